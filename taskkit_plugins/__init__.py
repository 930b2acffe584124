"""taskkit's built-in plugins, registered through the ``taskkit`` entry-point group exactly like
third-party plugins (see ``[project.entry-points.taskkit]`` in pyproject.toml).

A task is one module (``sentiment.py``, ``topic.py``...); a mode is a package whose ``mode.py`` is the
plugin and whose other modules are the helpers only that mode uses (``few_shot/contrastive.py``...).
"""
