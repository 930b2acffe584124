"""A taskkit plugin whose import fails, as a plugin with a missing dependency would."""

raise ImportError("taskkit_broken_plugin needs the 'no-such-dependency' package")
