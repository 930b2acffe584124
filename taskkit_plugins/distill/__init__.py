"""The ``distill`` mode: a student learns a saved teacher's soft labels on unlabelled texts."""
