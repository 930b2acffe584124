"""The plugin host: one pluggy PluginManager fed by the ``taskkit`` entry-point group.

Built-in plugins (``taskkit_plugins.*``) are declared as entry points in taskkit's own
pyproject.toml, so they are found exactly like third-party ones. ``TASKKIT_LOAD_PLUGINS``
(comma-separated entry-point or distribution names; empty for none) limits what loads.
"""

from __future__ import annotations

import os
import warnings
from importlib.metadata import entry_points

import pluggy

from taskkit import hookspecs

GROUP = "taskkit"
ENV_LOAD = "TASKKIT_LOAD_PLUGINS"

_pm: pluggy.PluginManager | None = None


class PluginLoadWarning(UserWarning):
    """A plugin failed to import; everything else keeps working."""


def _wanted() -> set[str] | None:
    raw = os.environ.get(ENV_LOAD)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    wanted = _wanted()
    for ep in entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else ""
        if wanted is not None and ep.name not in wanted and dist not in wanted:
            continue
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            warnings.warn(
                f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}",
                PluginLoadWarning,
                stacklevel=2,
            )
            continue
        pm.register(plugin, name=ep.name)
    pm.check_pending()  # a misspelled hook name fails here, not silently


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(GROUP)
        pm.add_hookspecs(hookspecs)
        _load_entry_points(pm)
        _pm = pm
    return _pm


def reset() -> None:
    """Forget loaded plugins (tests, or after installing a plugin in-process)."""
    global _pm
    _pm = None
    from taskkit import registry

    registry.clear()


def plugin_names() -> list[tuple[str, str]]:
    """(plugin name, module or object) for ``taskkit plugins``."""
    pm = get_plugin_manager()
    rows = []
    for name, plugin in pm.list_name_plugin():
        rows.append((name, getattr(plugin, "__name__", type(plugin).__name__)))
    return sorted(rows)
