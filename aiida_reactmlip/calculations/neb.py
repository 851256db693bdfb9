"""``reactmlip.neb``: climbing-image NEB with one MLIP (ASE ``ase.mep.NEB``), in one job."""

from __future__ import annotations

from aiida import orm
from aiida.engine import CalcJob

from aiida_reactmlip.calculations.relax import (
    FRAMES_FILE,
    calcinfo_for,
    check_model_covers,
    define_common,
    runner_input,
    validate_settings,
    write_runner_files,
)
from aiida_reactmlip.data.dataset import LabelledDatasetData

OUTPUT_FILE = "band.extxyz"
RESULTS_FILE = "profile.json"

#: Settings with defaults. ``n_images``: images between the end states (used when ``images`` holds only
#: the two end states); fmax in eV/Å; ``fixed_atoms``: atom indices fixed in every image.
DEFAULT_SETTINGS = {
    "n_images": 5,
    "climb": True,
    "fmax": 0.05,
    "max_steps": 300,
    "optimizer": "FIRE",
    "relax_endpoints": False,
    "endpoint_fmax": None,
    "endpoint_max_steps": 200,
    "interpolation": "idpp",
    "fixed_atoms": [],
    "device": "cpu",
    "num_threads": None,
}


def validate_inputs(inputs, _):
    """Refuse before submission: uncovered elements, fewer than 2 images, unlike images, bad settings."""
    model, images = inputs.get("model"), inputs.get("images")
    if model is not None and images is not None:
        message = check_model_covers(model, images.base.attributes.get("elements", []), f"images pk {images.pk}")
        if message:
            return message
    settings = inputs["settings"].get_dict() if "settings" in inputs else {}
    message = validate_settings(settings, DEFAULT_SETTINGS, "neb")
    if message:
        return message
    if settings.get("interpolation", "idpp") not in ("idpp", "linear"):
        return f"interpolation must be idpp or linear, got {settings['interpolation']!r}"
    try:
        if int(settings.get("n_images", 5)) < 1:
            return f"n_images (images between the end states) must be >= 1, got {settings['n_images']}"
    except (TypeError, ValueError):
        return f"n_images must be an integer, got {settings.get('n_images')!r}"
    if images is not None:
        frames = images.frames
        if len(frames) < 2:
            return f"images pk {images.pk} holds {len(frames)} frame(s): NEB needs at least the two end states"
        numbers = [list(frames.numbers[frames.atoms_slice(i)]) for i in range(len(frames))]
        unlike = [i for i in range(1, len(frames)) if numbers[i] != numbers[0]]
        if unlike:
            return f"image(s) {unlike} of images pk {images.pk} have other atoms than image 0 (same order needed)"
        bad = [i for i in settings.get("fixed_atoms") or [] if not 0 <= int(i) < len(numbers[0])]
        if bad:
            return f"settings fixed_atoms: atom index(es) {bad} out of range ({len(numbers[0])} atoms)"
    return None


class MlipNebCalculation(CalcJob):
    """Climbing-image NEB with one MLIP: end states (optionally relaxed first) -> idpp/linear band -> ASE NEB.

    Runs ``reactmlip-runner neb`` on the computer of ``code``, one calculator shared by all images.
    Exit 401 when the band did not reach ``fmax`` (outputs still stored, ``profile.converged`` False).
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_common(spec, "reactmlip.neb")
        spec.input("images", valid_type=LabelledDatasetData,
                   help="The two end states (initial, final) or a whole initial band (labels unused).")
        spec.input("settings", valid_type=orm.Dict, required=False, help=f"Settings, defaults {DEFAULT_SETTINGS}.")
        spec.inputs.validator = validate_inputs
        spec.output("band", valid_type=LabelledDatasetData,
                    help="Final images, end states included, with the model's energies (eV) and forces (eV/Å).")
        spec.output("profile", valid_type=orm.Dict,
                    help="energies, relative_energies, barrier, reverse_barrier, reaction_energy (eV), "
                    "highest_image, converged, steps, fmax (eV/Å), end_states, timings.")

    def prepare_for_submission(self, folder):
        settings = {**DEFAULT_SETTINGS, **(self.inputs.settings.get_dict() if "settings" in self.inputs else {})}
        params = runner_input(self.inputs.model, settings, frames_file=FRAMES_FILE, output_file=OUTPUT_FILE,
                              results_file=RESULTS_FILE)
        write_runner_files(folder, self.inputs.images.frames, params)
        return calcinfo_for(self.inputs.code, self.inputs.model, "neb", [OUTPUT_FILE, RESULTS_FILE])
