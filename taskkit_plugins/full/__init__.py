"""The ``full`` mode (fine-tune the whole encoder and the task's head): its plugin is :mod:`.mode`."""
