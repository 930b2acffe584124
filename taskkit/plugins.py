"""The plugin host: one pluggy PluginManager fed by the ``taskkit`` entry-point group.

Built-in plugins (``taskkit_plugins.*``) are declared as entry points in taskkit's own
pyproject.toml, so they are found exactly like third-party ones. ``TASKKIT_LOAD_PLUGINS``
(comma-separated entry-point or distribution names; empty for none) limits what loads.

A faulty plugin never takes the others down: an exception or ``SystemExit`` while importing it,
a hook name taskkit does not define, a hook with a wrong signature, or a failing hook is a
:class:`PluginLoadWarning` naming the plugin, and the plugin is left out. Two distributions
declaring one entry-point name is an error naming both.

One :class:`Host` owns the plugin manager and every table built from the register hooks (tasks and
modes in :mod:`taskkit.registry`, formats in :mod:`taskkit.formats`); those modules ask it for
their tables, and :func:`reset` forgets them all at once, so this module imports neither.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from taskkit import hookspecs
from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    import typer

GROUP = "taskkit"
ENV_LOAD = "TASKKIT_LOAD_PLUGINS"

#: the commands each plugin added to a CLI app: app id -> (plugin manager, plugin name -> commands)
_commands: dict[int, tuple[pluggy.PluginManager, dict[str, list[Any]]]] = {}


class PluginLoadWarning(UserWarning):
    """A plugin failed to load or to run a hook; everything else keeps working."""


class PluginConflictError(TaskkitError):
    """Two installed distributions declare the same plugin (entry-point) name."""


def warn(plugin: str, what: str, exc: BaseException | None = None) -> None:
    """One warning line naming the plugin (``exc``: the fault, as ``Type: message``)."""
    detail = ""
    if exc is not None:
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())  # one line
        text = text if len(text) <= 300 else text[:297] + "..."
        detail = f": {type(exc).__name__}" + (f": {text}" if text else "")
    warnings.warn(f"plugin {plugin!r} {what}{detail}", PluginLoadWarning, stacklevel=3)


def one_line_warnings() -> None:
    """Print :class:`PluginLoadWarning` as one ``warning: ...`` line with no source excerpt (the
    CLI's choice; other warnings keep Python's format)."""
    original = warnings.formatwarning
    if getattr(original, "_taskkit", False):
        return

    def formatwarning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
        if issubclass(category, PluginLoadWarning):
            return f"warning: {category.__name__}: {message}\n"
        return original(message, category, filename, lineno, line)

    formatwarning._taskkit = True  # type: ignore[attr-defined]
    warnings.formatwarning = formatwarning


def _wanted() -> set[str] | None:
    raw = os.environ.get(ENV_LOAD)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or ""


def _selected() -> list[Any]:
    """The entry points to load, refusing one name declared by two different distributions."""
    wanted = _wanted()
    chosen: dict[str, Any] = {}
    for ep in entry_points(group=GROUP):
        dist = _dist_name(ep)
        if wanted is not None and ep.name not in wanted and dist not in wanted:
            continue
        if ep.name in chosen:
            other = _dist_name(chosen[ep.name])
            if _normal(other) != _normal(dist):
                raise PluginConflictError(
                    f"plugin name {ep.name!r} is declared by two distributions: {other or chosen[ep.name].value!r} "
                    f"and {dist or ep.value!r}; uninstall one of them (or leave one out with {ENV_LOAD})")
            continue  # the same distribution seen twice on the path: the first copy wins
        chosen[ep.name] = ep
    return list(chosen.values())


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """The hooks ``plugin`` implements that taskkit does not define (a misspelled name)."""
    return sorted(caller.name for caller in pm.get_hookcallers(plugin) or []
                  if not caller.has_spec() and not all(impl.optionalhook for impl in caller.get_hookimpls()
                                                       if impl.plugin is plugin))


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    for ep in _selected():
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 -- a broken plugin must not take the others down
            warn(ep.name, f"({ep.value}) failed to load", exc)
            continue
        try:
            pm.register(plugin, name=ep.name)
        except pluggy.PluginValidationError as exc:  # a hookimpl whose arguments the hook does not have
            warn(ep.name, f"({ep.value}) has an invalid hook and was left out", exc)
            continue
        except ValueError as exc:  # the same module already registered under another name
            warn(ep.name, f"({ep.value}) was left out", exc)
            continue
        unknown = _unknown_hooks(pm, plugin)
        if unknown:
            pm.unregister(plugin)
            hooks = ", ".join(sorted(c.name for c in vars(pm.hook).values()
                                     if isinstance(c, pluggy.HookCaller) and c.has_spec()))
            warn(ep.name, f"({ep.value}) implements unknown hook(s) {', '.join(unknown)} (taskkit's hooks: "
                 f"{hooks}) and was left out")
    pm.check_pending()  # only the plugins that passed the check above are registered


class Host:
    """The plugin manager (entry points loaded on first use) and the tables built from its
    register hooks, each built once on first use: ``table(kind, build)``."""

    def __init__(self) -> None:
        self._pm: pluggy.PluginManager | None = None
        self._tables: dict[str, dict[str, Any]] = {}

    def plugin_manager(self) -> pluggy.PluginManager:
        if self._pm is None:
            pm = pluggy.PluginManager(GROUP)
            pm.add_hookspecs(hookspecs)
            _load_entry_points(pm)
            self._pm = pm
        return self._pm

    def table(self, kind: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The table of ``kind`` (``"task"``, ``"mode"``, ``"format"``), built by ``build()`` once."""
        if kind not in self._tables:
            self._tables[kind] = build()
        return self._tables[kind]

    def forget_tables(self) -> None:
        """Build the tables again on next use (after a plugin was registered or removed in-process)."""
        self._tables.clear()

    def reset(self) -> None:
        self._pm = None
        self._tables.clear()


#: the process's one host
HOST = Host()


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    return HOST.plugin_manager()


def reset() -> None:
    """Forget loaded plugins and their tables (tests, or after installing a plugin in-process)."""
    HOST.reset()


def plugin_names() -> list[tuple[str, str]]:
    """(plugin name, module or object) for ``taskkit plugins``."""
    pm = get_plugin_manager()
    rows = []
    for name, plugin in pm.list_name_plugin():
        rows.append((name, getattr(plugin, "__name__", type(plugin).__name__)))
    return sorted(rows)


def call_each(hook_name: str, kwargs: dict[str, Any], before: Callable[[str], None] | None = None,
              on_done: Callable[[str], None] | None = None, on_fault: Callable[[str], None] | None = None,
              reraise: tuple[type[BaseException], ...] = ()) -> None:
    """Call every implementation of a hook on its own, so a fault is pinned on its plugin.

    ``before(plugin)`` runs before each call; an exception or ``SystemExit`` from a plugin is a
    warning naming it (``on_fault(plugin)`` undoes whatever it did); ``reraise``: exceptions that
    are taskkit's own verdicts on what the plugin registered, which propagate.
    """
    pm = get_plugin_manager()
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        if impl.hookwrapper or getattr(impl, "wrapper", False):
            continue  # wrappers wrap a whole hook call; taskkit calls implementations one by one
        if before is not None:
            before(impl.plugin_name)
        try:
            impl.function(*(kwargs[name] for name in impl.argnames))
        except reraise:
            raise
        except (Exception, SystemExit) as exc:  # noqa: BLE001 -- any fault of a plugin is its own
            if on_fault is not None:
                on_fault(impl.plugin_name)
            warn(impl.plugin_name, f"failed in its {hook_name} hook and was left out", exc)
            continue
        if on_done is not None:
            on_done(impl.plugin_name)


def add_commands(app: typer.Typer) -> None:
    """Add the plugins' commands to ``app`` once: calling it again with the same plugins changes
    nothing; a plugin registered or removed since is added or taken out."""
    pm = get_plugin_manager()
    known = _commands.get(id(app))
    plugins_now = {name for name, _ in pm.list_name_plugin()}
    if known is not None and known[0] is pm and set(known[1]) == plugins_now and all(
            any(c is r for r in app.registered_commands) for cmds in known[1].values() for c in cmds):
        return
    if known is not None:  # take out what an earlier call added, then add afresh
        stale = [c for cmds in known[1].values() for c in cmds]
        app.registered_commands[:] = [c for c in app.registered_commands if not any(c is s for s in stale)]
    added: dict[str, list[Any]] = {}
    start = [len(app.registered_commands)]

    def done(plugin: str) -> None:
        added[plugin] = app.registered_commands[start[0]:]
        start[0] = len(app.registered_commands)

    def fault(plugin: str) -> None:
        del app.registered_commands[start[0]:]  # a half-registered plugin adds nothing

    call_each("register_commands", {"cli": app}, on_done=done, on_fault=fault)
    for name in plugins_now - set(added):
        added[name] = []
    _commands[id(app)] = (pm, added)
