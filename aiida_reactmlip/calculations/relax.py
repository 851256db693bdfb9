"""``reactmlip.relax``: geometry optimisation of every frame with one MLIP (ASE optimisers), in one job."""

from __future__ import annotations

from aiida import orm

from aiida_reactmlip.calculations.base import ModelRunnerCalculation, settings_input, structures_frames
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.runner import contract

#: Settings with defaults (:data:`aiida_reactmlip.runner.contract.RELAX_SETTINGS`).
DEFAULT_SETTINGS = contract.RELAX_SETTINGS


class RelaxCalculation(ModelRunnerCalculation):
    """Relax every frame of ``structures`` with one MLIP through ASE (BFGS, FIRE or LBFGS) until the largest
    force on a free atom is below ``fmax`` (eV/Å) or ``max_steps`` steps; fixed atoms stay bit-identical.

    Runs ``reactmlip-runner relax`` on the computer of ``code``. Exit ``ERROR_NOT_CONVERGED`` when a frame did
    not converge (all outputs are still stored, ``results`` says which).
    """

    TASK = "relax"
    FRAMES_PORT = "structures"

    @classmethod
    def frames_problem(cls, frames, settings: dict) -> str | None:
        """``relax_cell`` needs 3D-periodic frames."""
        if settings["relax_cell"]:
            flat = [i for i, pbc in enumerate(structures_frames(frames).pbc) if not pbc.all()]
            if flat:
                return f"relax_cell needs 3D-periodic frames; frame(s) {flat} are not"
        return None

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structures", valid_type=(LabelledDatasetData, orm.StructureData),
                   help="Frames to relax (labels unused), or one StructureData.")
        settings_input(spec, cls.TASK)
        spec.output("relaxed", valid_type=LabelledDatasetData,
                    help="Relaxed frames labelled with the model's energy (eV), forces (eV/Å), stress (eV/Å^3, "
                    "3D-periodic only); frame info role='mlip_relaxed', converged, steps, model_name.")
        spec.output("results", valid_type=orm.Dict,
                    help="Per frame: converged, steps, fmax (eV/Å), energy (eV), fixed_atoms, seconds; timings.")
        spec.output("trajectory", valid_type=orm.ArrayData, required=False,
                    help="Per frame i: arrays energies_i (eV) and fmax_i (eV/Å) at every optimiser step.")
