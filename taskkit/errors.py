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
