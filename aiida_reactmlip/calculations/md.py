"""``reactmlip.md``: MLIP molecular dynamics from each start frame (ASE Langevin / NVT Berendsen), in one job.

The saved frames, labelled with the model's energies and forces, are a candidate pool for active learning
(see :mod:`aiida_reactmlip.selection`). The runner side is :mod:`aiida_reactmlip.runner.md`.
"""

from __future__ import annotations

from aiida import orm

from aiida_reactmlip.calculations.base import ModelRunnerCalculation, settings_input
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.runner import contract

#: ``parameters`` only this CalcJob reads: ``fail_on_blowup`` finishes with ``ERROR_MD_BLEW_UP`` (outputs still
#: stored) when a trajectory blew up.
CALCJOB_PARAMETERS = {"fail_on_blowup": False}

#: ``parameters`` with defaults (units: K, fs, 1/fs, eV/Å, Å; :data:`aiida_reactmlip.runner.contract.MD_SETTINGS`).
#: ``fixed_atoms``: a list of atom indices fixed in every start frame, or {frame index: [atom indices]}; a
#: frame's info entry ``fixed_atoms`` (JSON list) is honoured too.
DEFAULT_PARAMETERS = {**contract.MD_SETTINGS, **CALCJOB_PARAMETERS}


class MdCalculation(ModelRunnerCalculation):
    """Seeded NVT molecular dynamics with one MLIP from every start frame; every ``save_every``-th step is kept.

    Runs ``reactmlip-runner md`` on the computer of ``code``. A trajectory that blows up (a force above
    ``max_force`` eV/Å, atoms closer than ``min_distance`` Å) is stopped there and its earlier frames are
    kept; ``report.blew_up`` says so (``ERROR_MD_BLEW_UP`` only with ``fail_on_blowup``).
    ``ERROR_NO_FRAMES_SAVED`` when no frame at all could be saved.
    """

    TASK = "md"
    FRAMES_PORT = "structures"
    SETTINGS_PORT = "parameters"
    CALCJOB_KEYS = tuple(CALCJOB_PARAMETERS)

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structures", valid_type=(LabelledDatasetData, orm.StructureData),
                   help="Start frames (labels unused), or one StructureData.")
        settings_input(spec, cls.TASK, port=cls.SETTINGS_PORT, extra=CALCJOB_PARAMETERS)
        spec.output("trajectory", valid_type=LabelledDatasetData, required=False,
                    help="Saved frames with the model's energy (eV) and forces (eV/Å); frame info group "
                    "'md-<start>', md_start, md_step, md_time_fs, temperature_K, role 'mlip_md', model_uuid.")
        spec.output("report", valid_type=orm.Dict,
                    help="steps_done, n_frames, seconds, steps_per_second, max_temperature_K, blew_up, "
                    "blown_up_starts; per start frame: steps, frames saved, blow-up step and reason.")
        spec.output("thermo", valid_type=orm.ArrayData, required=False,
                    help="Per start frame i, at every step done: epot_i (eV), temperature_i (K), fmax_i (eV/Å).")
