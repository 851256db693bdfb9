"""``reactmlip.md``: MLIP molecular dynamics from each start frame (ASE Langevin / NVT Berendsen), in one job.

The saved frames, labelled with the model's energies and forces, are a candidate pool for active learning
(see :mod:`aiida_reactmlip.selection`). The runner side is :mod:`aiida_reactmlip.calculations.runner_md`.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import CalcJob

from aiida_reactmlip.calculations.relax import (
    FRAMES_FILE,
    calcinfo_for,
    check_model_covers,
    define_common,
    runner_input,
    structures_elements,
    structures_frames,
    write_runner_files,
)
from aiida_reactmlip.calculations.runner_md import MD_SETTINGS, check_settings
from aiida_reactmlip.data.dataset import LabelledDatasetData

OUTPUT_FILE = "trajectory.extxyz"
RESULTS_FILE = "report.json"
THERMO_FILE = "thermo.npz"

#: ``parameters`` with defaults (units: K, fs, 1/fs, eV/Å, Å). ``fixed_atoms``: a list of atom indices fixed in
#: every start frame, or {frame index: [atom indices]}; a frame's info entry ``fixed_atoms`` (JSON list) is
#: honoured too. ``fail_on_blowup``: finish with exit 402 (outputs still stored) when a trajectory blew up.
DEFAULT_PARAMETERS = {**MD_SETTINGS, "fail_on_blowup": False}


def _n_atoms(structures) -> list[int]:
    if isinstance(structures, LabelledDatasetData):
        return [int(n) for n in structures.get_array("n_atoms")]
    return [len(structures.sites)]


def validate_inputs(inputs, _):
    """Refuse before submission: elements the model does not cover, bad parameters, bad fixed atoms."""
    model, structures = inputs.get("model"), inputs.get("structures")
    if model is not None and structures is not None:
        message = check_model_covers(model, structures_elements(structures), f"structures pk {structures.pk}")
        if message:
            return message
    raw = inputs["parameters"].get_dict() if "parameters" in inputs else {}
    raw = {k: v for k, v in raw.items() if k != "fail_on_blowup"}
    try:
        params = check_settings(raw)
    except ValueError as exc:
        return f"reactmlip.md parameters: {exc}"
    if structures is not None:
        n_atoms = _n_atoms(structures)
        fixed = params["fixed_atoms"]
        per_frame = fixed if isinstance(fixed, dict) else {i: fixed for i in range(len(n_atoms))}
        for frame, indices in per_frame.items():
            if frame >= len(n_atoms):
                return f"parameters fixed_atoms names frame {frame}, but there are {len(n_atoms)} frame(s)"
            bad = [i for i in indices if i >= n_atoms[frame]]
            if bad:
                return f"parameters fixed_atoms: atom index(es) {bad} out of range for frame {frame} ({n_atoms[frame]} atoms)"
    return None


class MdCalculation(CalcJob):
    """Seeded NVT molecular dynamics with one MLIP from every start frame; every ``save_every``-th step is kept.

    Runs ``reactmlip-runner md`` on the computer of ``code``. A trajectory that blows up (a force above
    ``max_force`` eV/Å, atoms closer than ``min_distance`` Å) is stopped there and its earlier frames are
    kept; ``report.blew_up`` says so (exit 402 only with ``fail_on_blowup``). Exit 403 when no frame at all
    could be saved.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_common(spec, "reactmlip.md")
        spec.input("structures", valid_type=(LabelledDatasetData, orm.StructureData),
                   help="Start frames (labels unused), or one StructureData.")
        spec.input("parameters", valid_type=orm.Dict, required=False,
                   help=f"MD parameters, defaults {DEFAULT_PARAMETERS}.")
        spec.inputs.validator = validate_inputs
        spec.output("trajectory", valid_type=LabelledDatasetData, required=False,
                    help="Saved frames with the model's energy (eV) and forces (eV/Å); frame info group "
                    "'md-<start>', md_start, md_step, md_time_fs, temperature_K, role 'mlip_md', model_uuid.")
        spec.output("report", valid_type=orm.Dict,
                    help="steps_done, n_frames, seconds, steps_per_second, max_temperature_K, blew_up, "
                    "blown_up_starts; per start frame: steps, frames saved, blow-up step and reason.")
        spec.output("thermo", valid_type=orm.ArrayData, required=False,
                    help="Per start frame i, at every step done: epot_i (eV), temperature_i (K), fmax_i (eV/Å).")
        spec.exit_code(402, "ERROR_MD_BLEW_UP",
                       message="A trajectory blew up (outputs are stored, fail_on_blowup was set): {message}")
        spec.exit_code(403, "ERROR_NO_FRAMES_SAVED", message="No frame was saved: {message}")

    def prepare_for_submission(self, folder):
        raw = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        settings = check_settings({k: v for k, v in raw.items() if k != "fail_on_blowup"})
        fixed = settings["fixed_atoms"]
        settings["fixed_atoms"] = {str(k): v for k, v in fixed.items()} if isinstance(fixed, dict) else fixed
        params = runner_input(self.inputs.model, settings, frames_file=FRAMES_FILE, output_file=OUTPUT_FILE,
                              results_file=RESULTS_FILE, thermo_file=THERMO_FILE)
        write_runner_files(folder, structures_frames(self.inputs.structures), params)
        return calcinfo_for(self.inputs.code, self.inputs.model, "md", [OUTPUT_FILE, RESULTS_FILE, THERMO_FILE])
