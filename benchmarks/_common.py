"""Helpers shared by the benchmarks: a throw-away AiiDA profile, timers, machine facts, result files.

Nothing here imports aiida at module load: the temporary profile must set ``AIIDA_PATH`` before
the first ``import aiida`` of the process (aiida reads it once, when its configuration module loads).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import json
import os
import pathlib
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"

PROFILE_NAME = "bench"

_TEMP_AIIDA_PATH: str | None = None


# --------------------------------------------------------------------------- AiiDA profile


def temporary_profile() -> str:
    """Load a throw-away ``core.sqlite_dos`` profile (no broker) living in a temporary ``AIIDA_PATH``.

    Idempotent within a process: the first call creates the directory and the profile, later calls
    return the same directory. The directory is removed when the process exits. Raises
    ``RuntimeError`` if aiida was imported before (its configuration folder is then fixed and the
    benchmark would write into the user's real profile).
    """
    global _TEMP_AIIDA_PATH  # noqa: PLW0603
    if _TEMP_AIIDA_PATH is not None:
        return _TEMP_AIIDA_PATH
    if "aiida" in sys.modules:
        raise RuntimeError(
            "aiida was imported before the benchmark set AIIDA_PATH: refusing to touch the real profile; "
            "run the benchmarks with `python -m benchmarks`"
        )
    path = tempfile.mkdtemp(prefix="reactmlip-bench-aiida-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.environ["AIIDA_PATH"] = path
    _TEMP_AIIDA_PATH = path

    import warnings

    with warnings.catch_warnings():  # "Creating AiiDA configuration folder ...": expected, it is ours
        warnings.filterwarnings("ignore", message="Creating AiiDA configuration folder")
        from aiida_reactmlip import provision

        provision.ensure_profile(PROFILE_NAME)
    return path


# --------------------------------------------------------------------------------- timing


@contextlib.contextmanager
def timed(store: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall seconds of the ``with`` block to ``store[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        store[key] = store.get(key, 0.0) + (time.perf_counter() - start)


def repeat_timed(function: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Call ``function`` ``repeat`` times; return the wall seconds of each call and the last result."""
    seconds, result = [], None
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def summarize(seconds: list[float]) -> dict[str, float]:
    return {
        "min_s": min(seconds),
        "median_s": statistics.median(seconds),
        "max_s": max(seconds),
        "runs": len(seconds),
    }


# ------------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_busy_fraction(interval: float = 1.0) -> float | None:
    """Fraction of all CPUs busy (system-wide, from /proc/stat) over ``interval`` seconds; None if unknown.

    Sampled while this process idles: anything well above 0 is other work competing for the cores
    (on a 2-core machine a busy neighbour makes every timing here slower and noisier).
    """

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return 1.0 - (idle1 - idle0) / (total1 - total0)


#: default for ``--wait-idle``: how long to wait for quiet CPUs before each measured path (s)
DEFAULT_WAIT_IDLE = 60.0


def wait_for_idle(max_wait: float = DEFAULT_WAIT_IDLE, threshold: float = 0.15, window: float = 2.0,
                  log=None) -> dict[str, Any]:
    """Wait until the CPUs are less than ``threshold`` busy over ``window`` s, or ``max_wait`` s passed.

    On a shared machine this gives each measured path a better chance of starting on quiet cores.
    Returns ``{"busy_fraction": last sample, "waited_s": ..., "idle": reached threshold}``.
    """
    start = time.perf_counter()
    busy = cpu_busy_fraction(window)
    told = False
    while busy is not None and busy >= threshold and time.perf_counter() - start < max_wait:
        if log is not None and not told:
            log(f"CPUs {100 * busy:.0f}% busy: waiting up to {max_wait:.0f} s for them to quieten")
            told = True
        busy = cpu_busy_fraction(window)
    return {
        "busy_fraction": busy,
        "waited_s": time.perf_counter() - start,
        "idle": busy is not None and busy < threshold,
    }


def machine_info() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("aiida-core", "aiida-reactmlip", "ase", "numpy", "torch", "chgnet", "sevenn"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(load) if load else None,
        "cpu_busy_fraction_at_start": cpu_busy_fraction(),
        "accelerator": "none (CPU only)",
        "versions": versions,
    }


# ------------------------------------------------------------------------------- results


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_result(name: str, payload: dict[str, Any], results_dir: pathlib.Path | None = None) -> pathlib.Path:
    """Write ``payload`` as ``<results_dir>/<name>.json`` (atomically) and return the path."""
    directory = pathlib.Path(results_dir) if results_dir is not None else RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def fmt_s(seconds: float | None, digits: int = 2) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "n/a"
    return f"{seconds:.{digits}f}"


def fmt_ms(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "n/a"
    return f"{1000.0 * seconds:.1f}"
