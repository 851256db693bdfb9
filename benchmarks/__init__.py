"""Performance benchmarks of aiida-reactmlip: measurements, printed as tables and written as JSON.

Not pass/fail timed tests. Run ``python -m benchmarks --list`` to see them, ``python -m benchmarks NAME
[--frames N]`` to run one, ``python -m benchmarks`` (``make bench``) to run all with default sizes.
Results go to ``benchmarks/results/<name>.json``. See ``benchmarks/README.md``.

The benchmark modules are imported lazily: none of them imports aiida at import time, because the
throw-away profile must set ``AIIDA_PATH`` before aiida is first imported.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: name -> module (relative to this package); each module has NAME, DESCRIPTION, DEFAULT_FRAMES,
#: run(frames=None, console=None, **options) -> dict and render(result, console).
BENCHMARKS: dict[str, str] = {
    "evaluate": ".evaluate",
    "frames_io": ".frames_io",
}


def load(name: str) -> ModuleType:
    """The module of benchmark ``name``; ``KeyError`` naming the known ones otherwise."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return importlib.import_module(BENCHMARKS[name], __name__)
