"""Tasks and modes by name, collected from the plugins' register hooks.

Two plugins registering one name is an error naming both; an unknown name is a user error
listing what exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from taskkit.errors import TaskkitError
from taskkit.plugins import get_plugin_manager

if TYPE_CHECKING:
    from taskkit.contracts import Mode, Task

T = TypeVar("T")

_tasks: dict[str, tuple["Task", str]] | None = None
_modes: dict[str, tuple["Mode", str]] | None = None


class DuplicateNameError(TaskkitError):
    """Two plugins registered the same task or mode name."""


def clear() -> None:
    global _tasks, _modes
    _tasks = _modes = None


def _collect(hook_name: str, kind: str) -> dict[str, tuple[object, str]]:
    pm = get_plugin_manager()
    found: dict[str, tuple[object, str]] = {}
    hook = getattr(pm.hook, hook_name)
    # Call each implementation separately so we know which plugin registered what.
    for impl in hook.get_hookimpls():
        plugin_name = impl.plugin_name

        def register(item: object, _plugin: str = plugin_name) -> None:
            name = getattr(item, "name", None)
            if not isinstance(name, str) or not name:
                raise TaskkitError(f"plugin {_plugin!r} registered a {kind} without a name")
            if name in found:
                raise DuplicateNameError(
                    f"{kind} {name!r} is registered by two plugins: {found[name][1]!r} and {_plugin!r}"
                )
            found[name] = (item, _plugin)

        impl.function(register=register)
    return found


def tasks() -> dict[str, tuple["Task", str]]:
    """name -> (task, plugin name)."""
    global _tasks
    if _tasks is None:
        _tasks = _collect("register_tasks", "task")  # type: ignore[assignment]
    return _tasks  # type: ignore[return-value]


def modes() -> dict[str, tuple["Mode", str]]:
    """name -> (mode, plugin name)."""
    global _modes
    if _modes is None:
        _modes = _collect("register_modes", "mode")  # type: ignore[assignment]
    return _modes  # type: ignore[return-value]


def _lookup(table: dict[str, tuple[T, str]], name: str, kind: str) -> T:
    if name not in table:
        known = ", ".join(sorted(table)) or "none installed"
        raise TaskkitError(f"unknown {kind} {name!r} (known: {known})")
    return table[name][0]


def get_task(name: str) -> "Task":
    return _lookup(tasks(), name, "task")


def get_mode(name: str) -> "Mode":
    return _lookup(modes(), name, "mode")


def get_pair(task_name: str, mode_name: str) -> tuple["Task", "Mode"]:
    """The task and mode of a run, checking that the mode supports the task."""
    task, mode = get_task(task_name), get_mode(mode_name)
    if not mode.supports(task):
        able = [m for m, (obj, _) in sorted(modes().items()) if obj.supports(task)]
        raise TaskkitError(
            f"mode {mode_name!r} does not support task {task_name!r} "
            f"(modes that do: {', '.join(able) or 'none'})"
        )
    return task, mode
