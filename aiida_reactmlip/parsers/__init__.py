"""Parsers of the ``reactmlip-runner`` CalcJobs, one per CalcJob, on one base (:mod:`~aiida_reactmlip.parsers.base`)
that maps the runner's ``status.json`` to the CalcJob's exit codes through :mod:`aiida_reactmlip.runner.contract`."""
