"""``reactmlip.evaluate``: one MLIP on a whole dataset in one job (energies, forces, stress)."""

from __future__ import annotations

from aiida import orm

from aiida_reactmlip.calculations.base import ModelRunnerCalculation, settings_input
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.runner import contract

#: Settings the runner understands, with defaults (:data:`aiida_reactmlip.runner.contract.EVALUATE_SETTINGS`).
DEFAULT_SETTINGS = contract.EVALUATE_SETTINGS


class EvaluateCalculation(ModelRunnerCalculation):
    """Predict energies (eV), forces (eV/Å) and stress (eV/Å^3) of every frame of a dataset with one MLIP.

    Runs ``reactmlip-runner evaluate`` on the computer of ``code`` (localhost, a GPU node, an HPC cluster):
    the runner does not import AiiDA. On an accelerator it batches inference where the model family
    supports it; on CPU it shares the frames among worker processes, one per core it may use (its
    affinity mask: ask the scheduler for cores, e.g. ``resources`` ``num_cores_per_mpiproc``). Settings
    ``workers`` and ``num_threads`` (torch threads per process) override that choice.
    """

    TASK = "evaluate"
    FRAMES_PORT = "dataset"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("dataset", valid_type=LabelledDatasetData, help="Frames to evaluate (labels are not used).")
        settings_input(spec, cls.TASK)
        spec.output("predictions", valid_type=orm.ArrayData,
                    help="Arrays energies (F,) eV, forces (N,3) eV/Å, stress (F,6) eV/Å^3, n_atoms (F,).")
        spec.output("timing", valid_type=orm.Dict, help="Model load and evaluation wall times (s).")
