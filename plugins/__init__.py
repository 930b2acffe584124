"""taskkit's built-in plugins, one per file, registered through the ``taskkit`` entry-point group
exactly like third-party plugins (see ``[project.entry-points.taskkit]`` in pyproject.toml)."""
