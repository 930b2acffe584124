"""The hooks a taskkit plugin implements.

A plugin is a module (or any object) with functions marked ``@taskkit.hookimpl``.
Each hook receives a ``register`` callback and calls it once per thing it provides,
the shape simonw/llm uses: a plugin never builds the registry itself.

taskkit calls each plugin's implementation on its own: one that raises (or calls ``sys.exit``)
is a ``PluginLoadWarning`` naming the plugin and what it registered is dropped, while the other
plugins work on. So is a hook name not defined here (a typo) or an argument a hook does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

    from taskkit.contracts import Mode, Predictor, Task

hookspec = pluggy.HookspecMarker("taskkit")
hookimpl = pluggy.HookimplMarker("taskkit")


@hookspec
def register_tasks(register: Callable[[Task], None]) -> None:
    """Call ``register(task)`` for each :class:`~taskkit.contracts.Task` this plugin provides.

    :param register: adds one task instance; a name already taken by another plugin is an error.
    """


@hookspec
def register_modes(register: Callable[[Mode], None]) -> None:
    """Call ``register(mode)`` for each learning :class:`~taskkit.contracts.Mode` this plugin provides.

    :param register: adds one mode instance; a name already taken by another plugin is an error.
    """


@hookspec
def register_formats(register: Callable[[str, Callable[[Path, Task, dict[str, Any]], Predictor]], None]) -> None:
    """Call ``register(name, loader)`` for each model-folder format this plugin reads.

    :param register: adds one format: ``name`` is ``NAME.vN`` (``"tfidf.v1"``), the string a
        predictor writes as ``format`` in its ``taskkit.json``; ``loader(path, task, metadata)``
        rebuilds that predictor (import heavy libraries inside it). A folder loads with its task's
        plugin and its format's plugin installed, whatever mode trained it. A name taken by another
        plugin (or the core: ``torch.v1``, ``adapter.v1``, ``embedding-head.v1``, ``ensemble.v1``,
        ``zero-shot.v1``) is an error.
    """


@hookspec
def register_commands(cli: typer.Typer) -> None:
    """Add sub-commands to the ``taskkit`` command line.

    :param cli: the root typer application; use ``@cli.command()`` on it.
    Import heavy libraries inside the command function, never at module top.
    """
