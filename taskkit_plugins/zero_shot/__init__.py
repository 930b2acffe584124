"""The ``zero-shot`` mode: its plugin (:mod:`.mode`: the mode and ``taskkit zero-shot``). What it
builds and saves is the core's (:mod:`taskkit.zero_shot_predictor`, format ``zero-shot.v1``, scored by
:mod:`taskkit.hypothesis_scoring`): few-shot ensembles and ``taskkit serve`` use it too, and a folder
loads without this plugin."""
