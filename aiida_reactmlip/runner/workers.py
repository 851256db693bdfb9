"""Worker processes sharing the frames of one evaluation on CPU (``workers`` of the evaluate settings).

Never imports aiida. :func:`plan_workers` decides how many processes and torch threads; :func:`evaluate_in_workers`
runs them (``spawn``: fresh processes that load the model once each).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

from aiida_reactmlip.models import load_calculator
from aiida_reactmlip.runner.files import peak_memory_mb
from aiida_reactmlip.runner.inference import Progress, evaluate_images

#: ``workers: null`` on CPU: at most this many worker processes ...
MAX_AUTO_WORKERS = 8
#: ... and only when each gets at least this many frames: a helper pays seconds of imports and model load on a
#: busy core before its first frame (docs/benchmark.md, "Speed", gives them per model), which ~100 frames at the
#: faster rate of two processes repay.
MIN_FRAMES_PER_WORKER = 100


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, which a batch scheduler sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def plan_workers(workers: int | None, num_threads: int | None, n_frames: int, device: str,
                 cpus: int) -> tuple[int, int | None]:
    """``(worker processes, torch threads per process)`` for an evaluation of ``n_frames`` frames.

    An explicit ``workers`` is honoured (at most one per frame). ``workers: null`` on CPU: one process
    per core, at most :data:`MAX_AUTO_WORKERS`, and only as many as get :data:`MIN_FRAMES_PER_WORKER`
    frames each; on an accelerator one. Threads: ``num_threads`` when given, else ``cpus // workers``
    for several workers and torch's own default (``None``) for one. Why: a 37-atom graph keeps two
    threads of one process busy only part of the time (graph building is serial Python), so on two
    cores two single-threaded processes evaluate at least as many frames per second as one two-threaded
    process, CHGNet clearly more (docs/benchmark.md, "Speed": both plain loops measured in one run).
    """
    if workers is not None:
        planned = max(1, min(int(workers), n_frames))
    elif str(device).startswith("cpu"):
        planned = max(1, min(cpus, MAX_AUTO_WORKERS, n_frames // MIN_FRAMES_PER_WORKER))
    else:
        planned = 1
    if num_threads:
        threads: int | None = int(num_threads)
    else:
        threads = max(1, cpus // planned) if planned > 1 else None
    return planned, threads


def worker_chunks(n_frames: int, workers: int, batch_size: int) -> list[range]:
    """Consecutive frame ranges shared out among the workers: about 32 per worker, so that the last ones
    leave little idle time, each a whole number of batches of at least 4 frames."""
    per_chunk = max(4, math.ceil(n_frames / (32 * workers)))
    per_chunk = max(batch_size, math.ceil(per_chunk / batch_size) * batch_size)
    return [range(start, min(start + per_chunk, n_frames)) for start in range(0, n_frames, per_chunk)]


#: State of a worker process of :func:`evaluate_in_workers` (set by :func:`_worker_init`).
_WORKER: dict[str, Any] = {}


def _worker_init(family: str, model_file: str, device: str, dtype: str | None, threads: int, mode: str,
                 batch_size: int, compute_stress: bool) -> None:
    import contextlib
    import io

    import torch

    start = time.perf_counter()
    torch.set_num_threads(threads)
    with contextlib.redirect_stdout(io.StringIO()):  # "CHGNet v0.3.0 initialized with ..."
        calc = load_calculator(family, model_file, device=device, dtype=dtype)
    _WORKER.update(calc=calc, family=family, device=device, mode=mode, batch_size=batch_size,
                   compute_stress=compute_stress, load_seconds=time.perf_counter() - start)


def _worker_evaluate(images) -> tuple:
    energies, forces, stress = evaluate_images(
        _WORKER["calc"], _WORKER["family"], _WORKER["mode"], images, _WORKER["batch_size"],
        _WORKER["compute_stress"], _WORKER["device"],
    )
    return energies, forces, stress, _WORKER["load_seconds"], peak_memory_mb()


def evaluate_in_workers(calc, params: dict[str, Any], mode: str, images, batch_size: int, workers: int,
                        threads: int, progress: Progress | None = None):
    """Like :func:`evaluate_images`, with the frames shared by this process and ``workers - 1`` helpers.

    The helpers are fresh processes (``spawn``: no torch state crosses a fork) that load the model once
    with ``threads`` torch threads each; while they import and load, this process, whose ``calc`` is
    already loaded, evaluates chunks from the end of the frames, so their start-up costs little. The
    helpers take chunks (:func:`worker_chunks`) from the front. Returns energies, forces, stress (frame
    order) and ``{"worker_load_seconds", "frames_by_helpers", "peak_memory_mb_helper"}``.
    """
    import multiprocessing
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    import torch

    torch.set_num_threads(threads)
    chunks = worker_chunks(len(images), workers, batch_size)
    results: dict[int, tuple] = {}
    pending = deque(range(len(chunks)))
    load_seconds, done, by_helpers, helper_memory = 0.0, 0, 0, 0.0
    initargs = (params["family"], str(params["model_file"]), params["device"], params["dtype"], threads, mode,
                batch_size, params["compute_stress"])
    pool = ProcessPoolExecutor(max_workers=workers - 1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=initargs)
    in_flight: dict = {}
    try:
        while pending or in_flight:
            while pending and len(in_flight) < 2 * (workers - 1):  # one chunk queued behind each running one
                index = pending.popleft()
                chunk = chunks[index]
                in_flight[pool.submit(_worker_evaluate, images[chunk.start : chunk.stop])] = index
            finished = [future for future in in_flight if future.done()]
            if not finished and not pending:
                finished = list(wait(in_flight, return_when=FIRST_COMPLETED).done)
            for future in finished:
                index = in_flight.pop(future)
                energies, forces, stress, worker_load, memory = future.result()
                helper_memory = max(helper_memory, memory or 0.0)
                results[index] = (energies, forces, stress)
                load_seconds = max(load_seconds, worker_load)
                done += len(chunks[index])
                by_helpers += len(chunks[index])
            if pending and not finished:  # this process takes the last chunk not yet handed out
                index = pending.pop()
                chunk = chunks[index]
                results[index] = evaluate_images(calc, params["family"], mode, images[chunk.start : chunk.stop],
                                                 batch_size, params["compute_stress"], params["device"])
                done += len(chunk)
            if progress is not None:
                progress.update(done)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    ordered = [results[index] for index in range(len(chunks))]
    energies = np.concatenate([r[0] for r in ordered])
    forces = [f for r in ordered for f in r[1]]
    stress = np.concatenate([r[2] for r in ordered])
    extra = {"worker_load_seconds": load_seconds, "frames_by_helpers": by_helpers,
             "peak_memory_mb_helper": helper_memory or None}
    return energies, forces, stress, extra

