"""Restart layer for the runner CalcJobs: ``BaseRestartWorkChain`` s that retry a failed job with changed inputs.

- ``reactmlip.finetune_base`` (:class:`FinetuneBaseWorkChain`): a diverged training (``ERROR_TRAINING_DIVERGED``)
  is retried with half the learning rate, at most :data:`MAX_LEARNING_RATE_HALVINGS` times.
- ``reactmlip.evaluate_base`` (:class:`EvaluateBaseWorkChain`): a job out of memory is retried with half the
  ``batch_size`` setting, down to one frame per batch.
- ``reactmlip.relax_base`` / ``reactmlip.neb_base``: a job that did not converge ends with its outputs attached.

Every one retries a killed job (out of walltime, scheduler out of memory, node failure, or a runner that ended
without writing its outputs) once, unchanged. Inputs of the job go in the namespace named after it
(``finetune``, ``evaluate``, ``relax``, ``neb``); its outputs are exposed under their own names.
"""

from __future__ import annotations

import re

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, CalcJob, ProcessHandlerReport, process_handler, while_

from aiida_reactmlip.calculations.evaluate import EvaluateCalculation
from aiida_reactmlip.calculations.finetune import FinetuneCalculation, resolve_family
from aiida_reactmlip.calculations.mlip_neb import MlipNebCalculation
from aiida_reactmlip.calculations.relax import RelaxCalculation
from aiida_reactmlip.runner.contract import EVALUATE_SETTINGS

__all__ = [
    "EvaluateBaseWorkChain",
    "FinetuneBaseWorkChain",
    "MAX_LEARNING_RATE_HALVINGS",
    "MlipNebBaseWorkChain",
    "RelaxBaseWorkChain",
    "RunnerBaseWorkChain",
    "failure_reason",
]

#: Retries of a diverged fine-tuning, each with half the learning rate of the previous try.
MAX_LEARNING_RATE_HALVINGS = 3
#: Retries of a killed job, unchanged.
MAX_KILLED_RETRIES = 1
#: What a runner's message says when a batch did not fit in memory (torch CUDA/CPU allocators, Python).
OUT_OF_MEMORY = re.compile(r"out of memory|OutOfMemoryError|MemoryError|can't allocate memory", re.IGNORECASE)

#: Exit codes of the scheduler (set by aiida's CalcJob) that say the job was killed from outside.
_KILLED_LABELS = ("ERROR_SCHEDULER_OUT_OF_MEMORY", "ERROR_SCHEDULER_OUT_OF_WALLTIME", "ERROR_SCHEDULER_NODE_FAILURE")


def failure_reason(node) -> str:
    """``[status] message`` of a failed process; for a restart WorkChain, also that of its last job."""
    reason = f"[{node.exit_status}] {node.exit_message}"
    children = [c for c in node.called if isinstance(c, orm.CalcJobNode)] if isinstance(node, orm.WorkflowNode) else []
    if children:
        last = max(children, key=lambda child: child.ctime)
        reason += f"; last job {last.process_label}<{last.pk}>: [{last.exit_status}] {last.exit_message}"
    return reason


class RunnerBaseWorkChain(BaseRestartWorkChain):
    """Run one runner CalcJob (``_process_class``, inputs in namespace ``_namespace``) until it finishes ok,
    retrying a killed job once unchanged. Subclasses add the handlers of their job's failures."""

    _process_class: type[CalcJob]
    _namespace: str

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(cls._process_class, namespace=cls._namespace)
        spec.expose_outputs(cls._process_class)
        # aiida-core 2.9.4: a daemon worker killed between a job's upload and its submission makes the reloaded
        # CalcJob skip the upload and finish ok without ``remote_folder``, every result of the job there
        # (docs/reliability.md); that must not fail the WorkChain (exit 11) and cost the user the job.
        spec.outputs["remote_folder"].required = False
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )
        spec.exit_code(404, "ERROR_KILLED_AFTER_RETRY",
                       message="The job was killed again after one retry (walltime, memory or node failure): "
                       "raise metadata.options max_wallclock_seconds or max_memory_kb, or ask for a larger node.")

    def setup(self):
        """The job's inputs in ``ctx.inputs``, from which every try is submitted; no retry counted yet."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(self._process_class, self._namespace))
        self.ctx.killed_retries = 0

    def dict_input(self, port: str) -> dict:
        """The ``Dict`` input ``port`` of the next try as a plain dict (empty when not given)."""
        value = self.ctx.inputs.get(port)
        if isinstance(value, orm.Dict):
            return value.get_dict()
        return dict(value or {})

    def finish_with(self, exit_code) -> ProcessHandlerReport:
        """Stop retrying and end the WorkChain with ``exit_code`` (even when ``max_iterations`` is reached)."""
        self.ctx.is_finished = True
        return ProcessHandlerReport(True, exit_code)

    def report_failure(self, node, action: str) -> None:
        """Report the failed job and what is done about it."""
        self.report(f"{node.process_label}<{node.pk}> failed with exit status {node.exit_status}: {node.exit_message}")
        self.report(action)

    def is_killed_job(self, node) -> bool:
        """True when the scheduler or the OS killed the runner: a scheduler exit code, or no outputs at all."""
        codes = self._process_class.exit_codes
        statuses = {codes[label].status for label in _KILLED_LABELS} | {codes.ERROR_MISSING_OUTPUT.status}
        return node.exit_status in statuses

    @process_handler(priority=400)
    def handle_killed_job(self, node):
        """A killed job: retry it once with the same inputs; the second time, stop."""
        if not self.is_killed_job(node):
            return None
        if self.ctx.killed_retries >= MAX_KILLED_RETRIES:
            self.report_failure(node, "killed again after a retry: giving up")
            return self.finish_with(self.exit_codes.ERROR_KILLED_AFTER_RETRY)
        self.ctx.killed_retries += 1
        self.report_failure(node, "the job was killed: retrying it once, unchanged")
        return ProcessHandlerReport(True)


class FinetuneBaseWorkChain(RunnerBaseWorkChain):
    """``reactmlip.finetune`` with retries: a diverged training is retried with half the learning rate
    (hyperparameter ``learning_rate``, per optimiser step) up to 3 times; a killed job once."""

    _process_class = FinetuneCalculation
    _namespace = "finetune"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        # room for every halving and for the retry of a killed job: the handlers, not the count, end the chain
        spec.inputs["max_iterations"].default = lambda: orm.Int(1 + MAX_LEARNING_RATE_HALVINGS + MAX_KILLED_RETRIES)
        spec.exit_code(403, "ERROR_TRAINING_DIVERGED_AFTER_RETRIES",
                       message=f"The training diverged {1 + MAX_LEARNING_RATE_HALVINGS} times, the learning rate "
                       "halved each time (last {learning_rate}): lower `learning_rate` further, or check the labels "
                       "of the training frames (energies in eV, forces in eV/Å) for outliers.")

    def setup(self):
        super().setup()
        self.ctx.learning_rate_halvings = 0

    def learning_rate(self) -> float:
        """The learning rate of the next try: the ``parameters`` value, else the family's default."""
        from aiida_reactmlip.training import default_hyperparameters

        parameters = self.dict_input("parameters")
        if "learning_rate" in parameters:
            return float(parameters["learning_rate"])
        family, _ = resolve_family(self.ctx.inputs)
        return float(default_hyperparameters(family)["learning_rate"])

    @process_handler(priority=500, exit_codes=FinetuneCalculation.exit_codes.ERROR_TRAINING_DIVERGED)
    def handle_training_diverged(self, node):
        """The loss became NaN or infinite: halve the learning rate and retry, at most 3 times."""
        learning_rate = self.learning_rate()
        if self.ctx.learning_rate_halvings >= MAX_LEARNING_RATE_HALVINGS:
            self.report_failure(node, f"training diverged at lr {learning_rate:g} after "
                                      f"{MAX_LEARNING_RATE_HALVINGS} halvings: giving up")
            exit_code = self.exit_codes.ERROR_TRAINING_DIVERGED_AFTER_RETRIES
            return self.finish_with(exit_code.format(learning_rate=f"{learning_rate:g}"))
        self.ctx.learning_rate_halvings += 1
        self.ctx.inputs.parameters = {**self.dict_input("parameters"), "learning_rate": learning_rate / 2}
        self.report_failure(node, f"training diverged at lr {learning_rate:g}: retrying with lr {learning_rate / 2:g}")
        return ProcessHandlerReport(True)


class EvaluateBaseWorkChain(RunnerBaseWorkChain):
    """``reactmlip.evaluate`` with retries: out of memory, retried with half the ``batch_size`` setting
    (frames per batch) down to 1; a killed job once."""

    _process_class = EvaluateCalculation
    _namespace = "evaluate"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.exit_code(405, "ERROR_OUT_OF_MEMORY_AT_BATCH_ONE",
                       message="The job ran out of memory with one frame per batch: ask for more memory "
                       "(metadata.options max_memory_kb) or a larger device, or evaluate fewer frames per job.")

    def is_out_of_memory(self, node) -> bool:
        """Out of memory: the scheduler says so, or the runner's failure message does."""
        codes = self._process_class.exit_codes
        if node.exit_status == codes.ERROR_SCHEDULER_OUT_OF_MEMORY.status:
            return True
        return node.exit_status == codes.ERROR_RUNNER_FAILED.status and bool(OUT_OF_MEMORY.search(node.exit_message or ""))

    @process_handler(priority=500)
    def handle_out_of_memory(self, node):
        """Out of memory on a batch: halve ``batch_size`` and retry; at one frame per batch, stop."""
        if not self.is_out_of_memory(node):
            return None
        settings = self.dict_input("settings")
        batch_size = int(settings.get("batch_size", EVALUATE_SETTINGS["batch_size"]))
        if batch_size <= 1:
            self.report_failure(node, "out of memory with batch_size 1: giving up")
            return self.finish_with(self.exit_codes.ERROR_OUT_OF_MEMORY_AT_BATCH_ONE)
        self.ctx.inputs.settings = {**settings, "batch_size": batch_size // 2}
        self.report_failure(node, f"out of memory at batch_size {batch_size}: retrying with batch_size {batch_size // 2}")
        return ProcessHandlerReport(True)


class OptimisationBaseWorkChain(RunnerBaseWorkChain):
    """What the relax and NEB WorkChains share: a job that did not converge ends the WorkChain with its
    outputs attached (exit 410) rather than as an unhandled failure."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.exit_code(410, "ERROR_NOT_CONVERGED",
                       message="The optimisation did not converge; its outputs are attached. The job said: {message}")

    @process_handler(priority=300)
    def handle_not_converged(self, node):
        """Not converged within ``max_steps``: no retry (the job used its steps); attach its outputs and stop."""
        if node.exit_status != self._process_class.exit_codes.ERROR_NOT_CONVERGED.status:
            return None
        self.report_failure(node, "not converged: outputs attached, no retry")
        report = self.finish_with(self.exit_codes.ERROR_NOT_CONVERGED.format(message=node.exit_message))
        self.results()
        return report


class RelaxBaseWorkChain(OptimisationBaseWorkChain):
    """``reactmlip.relax`` with a retry of a killed job."""

    _process_class = RelaxCalculation
    _namespace = "relax"


class MlipNebBaseWorkChain(OptimisationBaseWorkChain):
    """``reactmlip.neb`` (MLIP NEB) with a retry of a killed job."""

    _process_class = MlipNebCalculation
    _namespace = "neb"
