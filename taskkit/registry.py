"""Tasks and modes by name, collected from the plugins' register hooks.

Two plugins registering one name is an error naming both; an unknown name is a user error
listing what exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from taskkit.errors import TaskkitError
from taskkit.plugins import HOST, call_each

if TYPE_CHECKING:
    from taskkit.contracts import Mode, Task

T = TypeVar("T")


class RegistrationError(TaskkitError):
    """A plugin registered something taskkit refuses (a clash, a nameless task or mode)."""


class DuplicateNameError(RegistrationError):
    """Two plugins registered the same task or mode name."""


def clear() -> None:
    """Build the tables (tasks, modes, formats) again on next use."""
    HOST.forget_tables()


def _collect(hook_name: str, kind: str) -> dict[str, tuple[object, str]]:
    found: dict[str, tuple[object, str]] = {}
    current = [""]

    def register(item: object) -> None:
        plugin = current[0]
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise RegistrationError(f"plugin {plugin!r} registered a {kind} without a name")
        if name in found:
            raise DuplicateNameError(
                f"{kind} {name!r} is registered by two plugins: {found[name][1]!r} and {plugin!r}"
            )
        found[name] = (item, plugin)

    def forget(plugin: str) -> None:  # a plugin whose hook failed registers nothing
        for name in [n for n, (_, owner) in found.items() if owner == plugin]:
            del found[name]

    def start(plugin: str) -> None:
        current[0] = plugin

    # Each implementation is called on its own, so we know which plugin registered what, and a
    # plugin whose hook raises is a warning naming it while the others still register.
    call_each(hook_name, {"register": register}, before=start, on_fault=forget, reraise=(RegistrationError,))
    return found


def tasks() -> dict[str, tuple[Task, str]]:
    """name -> (task, plugin name)."""
    return HOST.table("task", lambda: _collect("register_tasks", "task"))


def modes() -> dict[str, tuple[Mode, str]]:
    """name -> (mode, plugin name)."""
    return HOST.table("mode", lambda: _collect("register_modes", "mode"))


def _lookup(table: dict[str, tuple[T, str]], name: str, kind: str) -> T:
    if name not in table:
        known = ", ".join(sorted(table)) or "none installed"
        raise TaskkitError(f"unknown {kind} {name!r} (known: {known})")
    return table[name][0]


def get_task(name: str) -> Task:
    return _lookup(tasks(), name, "task")


def get_mode(name: str) -> Mode:
    return _lookup(modes(), name, "mode")


def get_pair(task_name: str, mode_name: str) -> tuple[Task, Mode]:
    """The task and mode of a run, checking that the mode supports the task."""
    task, mode = get_task(task_name), get_mode(mode_name)
    if not mode.supports(task):
        able = [m for m, (obj, _) in sorted(modes().items()) if obj.supports(task)]
        raise TaskkitError(
            f"mode {mode_name!r} does not support task {task_name!r} "
            f"(modes that do: {', '.join(able) or 'none'})"
        )
    return task, mode
