"""The ``peft`` mode: its plugin (:mod:`.mode`: the mode and ``taskkit merge``) and the adapters it
trains (:mod:`.adapters`). The saved form, format ``adapter.v1``, is the core's
(:class:`taskkit.kernel.predictor.AdapterPredictor`): a folder loads without this plugin."""
