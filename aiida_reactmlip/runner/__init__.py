"""``reactmlip-runner``: the executable the MLIP CalcJobs run on any computer, and its contract with them.

Never imports aiida (only numpy, ASE, torch and the MLIP family asked for), so it runs on a compute node
that has the MLIP stack but no AiiDA profile. Modules:

- :mod:`~aiida_reactmlip.runner.contract`: exit codes, file names, defaults and allowed values, one settings
  check per task, the ``fixed_atoms`` convention; imported by ``calculations/`` and ``parsers/`` too;
- :mod:`~aiida_reactmlip.runner.files`: reading ``input.json``, loading frames and model, writing outputs;
- :mod:`~aiida_reactmlip.runner.inference`: the per-frame ASE loop and the batched CHGNet/SevenNet paths;
- :mod:`~aiida_reactmlip.runner.workers`: worker processes sharing the frames on CPU;
- :mod:`~aiida_reactmlip.runner.evaluate`, :mod:`~aiida_reactmlip.runner.optimise` (relax, NEB),
  :mod:`~aiida_reactmlip.runner.md`, :mod:`~aiida_reactmlip.runner.finetune`, :mod:`~aiida_reactmlip.runner.physics`:
  the tasks;
- :mod:`~aiida_reactmlip.runner.__main__`: the command line (:func:`main`).

The names below are importable from this package; each module is imported on first use only, so that the
CalcJobs importing :mod:`~aiida_reactmlip.runner.contract` load nothing else.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "contract": (
        "EXIT_CODES", "EXIT_DIVERGED", "EXIT_ELEMENTS", "EXIT_EVALUATION", "EXIT_INPUT", "EXIT_MODEL_LOAD",
        "EXIT_NOT_CONVERGED", "EXIT_OK", "STATUS_FILE", "RunnerError",
    ),
    "files": ("read_task_input", "write_status"),
    "inference": (
        "BATCHED_FAMILIES", "BATCHED_ON_CPU", "CPU_AUTO_BATCH_SIZE", "batch_size_for", "choose_mode",
        "evaluate_ase", "evaluate_chgnet_batched", "evaluate_images", "evaluate_sevenn_batched",
    ),
    "workers": ("MAX_AUTO_WORKERS", "MIN_FRAMES_PER_WORKER", "available_cpus", "evaluate_in_workers",
                "plan_workers", "worker_chunks"),
    "evaluate": ("run_evaluate",),
    "optimise": ("run_neb", "run_relax"),
    "md": ("run_md",),
    "finetune": ("run_finetune",),
    "physics": ("run_physics",),
    "__main__": ("build_parser", "main"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
