"""The one error type users see: a single line, exit code 2, never a traceback."""

from __future__ import annotations


class TaskkitError(Exception):
    """A problem with the user's input or environment, reported as one clear line.

    The CLI catches it, prints ``error: <message>`` and exits with ``exit_code``.
    Anything else that escapes is a bug in taskkit or a plugin.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Interrupted(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM, raised by the CLI's signal handlers (not an ``Exception``, so
    that no ``except Exception`` swallows it). Code on the way out adds what was interrupted
    (``during``) and what it means for the output (``outcome``); the CLI prints it as one line
    and exits 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(self, signal_name: str = "SIGINT", exit_code: int = 130) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = exit_code
        self.during = ""  # "during training (epoch 2 of 5, step 13 of 40)"
        self.outcome = ""  # "nothing was written to runs/x"

    def __str__(self) -> str:
        head = " ".join(part for part in ("interrupted", f"({self.signal_name})", self.during) if part)
        return "; ".join(part for part in (head, self.outcome) if part)
