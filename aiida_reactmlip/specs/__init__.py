"""Study files (YAML in ``workchains/``) -> checked specs -> WorkChain builders, with the codes, models and
datasets they need stored or set up on this machine.

- :mod:`.files`: the one reader, the vocabulary (old keys read with a :class:`~.files.DeprecatedKeyWarning`)
- :mod:`.datasets`: dataset entries -> stored nodes, one rule: the same frames are the same node
- :mod:`.campaign` (``reactmlip.benchmark``), :mod:`.study` (``reactmlip.finetune_study``),
  :mod:`.loop` (``reactmlip.active_learning``): one module per file kind
- :mod:`.builders`: StructureData from ASE Atoms; ``reactmlip.label`` and ``reactmlip.dft_neb`` builders
- :mod:`.codes`: the localhost codes, registry models, pseudopotential family and job options
"""
