"""The ``few-shot`` mode: its plugin (:mod:`.mode`), the contrastive phase (:mod:`.contrastive`), the
zero-shot prior's share (:mod:`.prior`) and the setfit library's engine (:mod:`.setfit_engine`). The
saved form, format ``embedding-head.v1``, is the core's: a folder loads without this plugin."""
