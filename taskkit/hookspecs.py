"""The hooks a taskkit plugin implements.

A plugin is a module (or any object) with functions marked ``@taskkit.hookimpl``.
Each hook receives a ``register`` callback and calls it once per thing it provides,
the shape simonw/llm uses: a plugin never builds the registry itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    import typer

    from taskkit.contracts import Mode, Task

hookspec = pluggy.HookspecMarker("taskkit")
hookimpl = pluggy.HookimplMarker("taskkit")


@hookspec
def register_tasks(register: Callable[["Task"], None]) -> None:
    """Call ``register(task)`` for each :class:`~taskkit.contracts.Task` this plugin provides.

    :param register: adds one task instance; a name already taken by another plugin is an error.
    """


@hookspec
def register_modes(register: Callable[["Mode"], None]) -> None:
    """Call ``register(mode)`` for each learning :class:`~taskkit.contracts.Mode` this plugin provides.

    :param register: adds one mode instance; a name already taken by another plugin is an error.
    """


@hookspec
def register_commands(cli: "typer.Typer") -> None:
    """Add sub-commands to the ``taskkit`` command line.

    :param cli: the root typer application; use ``@cli.command()`` on it.
    Import heavy libraries inside the command function, never at module top.
    """
