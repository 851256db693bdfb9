"""Performance benchmarks of aiida-reactmlip: measurements, printed as tables and written as JSON.

Not pass/fail timed tests. Run ``python -m benchmarks --list`` to see them, ``python -m benchmarks NAME
[--frames N]`` to run one, ``python -m benchmarks`` (``make bench``) to run all with default sizes.
Results go to ``benchmarks/results/<name>.json``. See ``benchmarks/README.md``.

A benchmark is a module of this package (name not starting with ``_``) that defines ``NAME``,
``DESCRIPTION``, ``DEFAULT_FRAMES``, ``run(frames=None, console=None, **options) -> dict`` and
``render(result, console)``; it is found automatically. Modules must not import aiida at import time:
a benchmark's throw-away profile has to set ``AIIDA_PATH`` before aiida is first imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

#: run first, in this order (the rest follow alphabetically)
PREFERRED_ORDER = ("evaluate", "frames_io")

_REQUIRED = ("NAME", "DESCRIPTION", "DEFAULT_FRAMES", "run", "render")
#: modules here that are commands of their own, not benchmarks (`python benchmarks/physics_checks.py run`)
_SCRIPTS = ("physics_checks", "loop_evidence", "finetune_study_docs", "barrier_loop", "loop_protocol", "campaign_docs",
            "performance_goals")


def _discover() -> dict[str, str]:
    names = sorted(info.name for info in pkgutil.iter_modules(__path__)
                   if not info.name.startswith("_") and info.name not in _SCRIPTS)
    ordered = [n for n in PREFERRED_ORDER if n in names] + [n for n in names if n not in PREFERRED_ORDER]
    return {name: f".{name}" for name in ordered}


#: benchmark name -> module (relative to this package)
BENCHMARKS: dict[str, str] = _discover()


def load(name: str) -> ModuleType:
    """The module of benchmark ``name``; ``KeyError`` naming the known ones otherwise."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    module = importlib.import_module(BENCHMARKS[name], __name__)
    missing = [attribute for attribute in _REQUIRED if not hasattr(module, attribute)]
    if missing:
        raise AttributeError(f"benchmark module {module.__name__} lacks {', '.join(missing)}")
    return module
