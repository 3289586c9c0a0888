"""Degradation kinds, kept free of imports so the CLI lists them without loading OpenCV."""

# real: the physical families of ftrt.degrade.physical (the training default); cofe and cataract are the
# published models, kept as families the restorer never trains on (held-out evaluation); mixed: the
# earlier training recipe (cofe and/or cataract); syn: the learnt Catintell-Syn generator (torch).
KINDS = ("cofe", "cataract", "mixed", "syn", "real")
