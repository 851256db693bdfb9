"""``reactmlip.neb``: climbing-image NEB with one MLIP (ASE ``ase.mep.NEB``), in one job.

The DFT NEB (Quantum ESPRESSO ``neb.x``) is :mod:`aiida_reactmlip.workflows.dft_neb`.
"""

from __future__ import annotations

from aiida import orm

from aiida_reactmlip.calculations.base import ModelRunnerCalculation, settings_input
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.runner import contract

#: Settings with defaults (:data:`aiida_reactmlip.runner.contract.NEB_SETTINGS`).
DEFAULT_SETTINGS = contract.NEB_SETTINGS


class MlipNebCalculation(ModelRunnerCalculation):
    """Climbing-image NEB with one MLIP: end states (optionally relaxed first) -> idpp/linear band -> ASE NEB.

    Runs ``reactmlip-runner neb`` on the computer of ``code``, one calculator shared by all images.
    Exit ``ERROR_NOT_CONVERGED`` when the band did not reach ``fmax`` (outputs still stored,
    ``profile.converged`` False).
    """

    TASK = "neb"
    FRAMES_PORT = "images"

    @classmethod
    def frames_problem(cls, frames, settings: dict) -> str | None:
        """At least the two end states, all with the same atoms in the same order."""
        content = frames.frames
        if len(content) < 2:
            return f"images pk {frames.pk} holds {len(content)} frame(s): NEB needs at least the two end states"
        numbers = [list(content.numbers[content.atoms_slice(i)]) for i in range(len(content))]
        unlike = [i for i in range(1, len(content)) if numbers[i] != numbers[0]]
        if unlike:
            return f"image(s) {unlike} of images pk {frames.pk} have other atoms than image 0 (same order needed)"
        return None

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("images", valid_type=LabelledDatasetData,
                   help="The two end states (initial, final) or a whole initial band (labels unused).")
        settings_input(spec, cls.TASK)
        spec.output("band", valid_type=LabelledDatasetData,
                    help="Final images, end states included, with the model's energies (eV) and forces (eV/Å).")
        spec.output("profile", valid_type=orm.Dict,
                    help="energies, relative_energies, barrier, reverse_barrier, reaction_energy (eV), "
                    "highest_image, converged, steps, fmax (eV/Å), end_states, timings.")
