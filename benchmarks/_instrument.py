"""Time the steps of a CalcJob run in this process by wrapping aiida-core's own functions (temporarily).

With a profile without broker, ``aiida.engine.run_get_node`` drives the whole CalcJob in this process:
``presubmit`` (our ``prepare_for_submission``), ``execmanager.upload_calculation``,
``execmanager.submit_calculation``, scheduler polling, ``execmanager.retrieve_calculation``,
``CalcJob.parse`` (the plugin's parser) and ``Process.update_outputs`` (storing output nodes).
Wrapping those entry points gives when each step started and ended, without touching the plugin.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class StepRecorder:
    """Start/end (``time.perf_counter``) of every call of each wrapped step."""

    spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, step: str, start: float, end: float) -> None:
        self.spans.setdefault(step, []).append((start, end))

    def total(self, step: str) -> float:
        return sum(end - start for start, end in self.spans.get(step, []))

    def first_start(self, step: str) -> float | None:
        spans = self.spans.get(step)
        return min(s for s, _ in spans) if spans else None

    def last_end(self, step: str) -> float | None:
        spans = self.spans.get(step)
        return max(e for _, e in spans) if spans else None


def _wrap(function, step: str, recorder: StepRecorder):
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def async_wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                recorder.add(step, start, time.perf_counter())

        return async_wrapper

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            recorder.add(step, start, time.perf_counter())

    return wrapper


@contextlib.contextmanager
def instrument_calcjob() -> Iterator[StepRecorder]:
    """Within the block, record the CalcJob steps run in this process; restore everything after."""
    from aiida.engine.daemon import execmanager
    from aiida.engine.processes.calcjobs.calcjob import CalcJob
    from aiida.engine.processes.process import Process

    recorder = StepRecorder()
    targets = [
        (CalcJob, "presubmit", "presubmit"),
        (execmanager, "upload_calculation", "upload"),
        (execmanager, "submit_calculation", "submit"),
        (execmanager, "retrieve_calculation", "retrieve"),
        (CalcJob, "parse", "parse"),
        (Process, "update_outputs", "store_outputs"),
    ]
    originals = []
    try:
        for owner, attribute, step in targets:
            original = owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)
            originals.append((owner, attribute, original))
            setattr(owner, attribute, _wrap(original, step, recorder))
        yield recorder
    finally:
        for owner, attribute, original in reversed(originals):
            setattr(owner, attribute, original)
