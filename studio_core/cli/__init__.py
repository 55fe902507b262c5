"""``wdstudio``: argument handling over the engine's entry points."""
