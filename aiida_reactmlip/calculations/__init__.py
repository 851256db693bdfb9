"""AiiDA processes that make or transform data.

- CalcJobs running ``reactmlip-runner`` (:mod:`aiida_reactmlip.runner`) on one base class
  (:mod:`~aiida_reactmlip.calculations.base`): ``evaluate``, ``relax``, ``mlip_neb`` (the MLIP NEB; the DFT one
  is :mod:`aiida_reactmlip.workflows.dft_neb`), ``md`` and ``finetune``;
- calcfunctions on datasets: ``functions`` (build a labelled dataset, compute metrics) and ``split`` (split,
  select, merge).
"""
