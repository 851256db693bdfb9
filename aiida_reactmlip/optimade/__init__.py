"""An OPTIMADE API over the labelled datasets of an AiiDA profile (every stored frame is one ``structures``
entry, with its DFT labels and the settings that produced them).

- :mod:`.app`: the ASGI application (``create_reactmlip_app``).
- :mod:`.backend`: the entry collections over the database.
- :mod:`.filters`: OPTIMADE filters as QueryBuilder filters plus an exact per-frame check.
- :mod:`.mapping`: one frame -> OPTIMADE attributes (pure; also used by the static JSONL export).
- :mod:`.provenance`: the DFT settings of the calculation that labelled a frame.
"""
