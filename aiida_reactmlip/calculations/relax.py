"""``reactmlip.relax``: geometry optimisation of every frame with one MLIP (ASE optimisers), in one job."""

from __future__ import annotations

import io
import json

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.frames import Frames, write_extxyz

FRAMES_FILE = "frames.extxyz"
INPUT_FILE = "input.json"
OUTPUT_FILE = "relaxed.extxyz"
RESULTS_FILE = "results.json"
TRAJECTORY_FILE = "trajectory.npz"
from aiida_reactmlip.calculations.runner import STATUS_FILE  # noqa: E402  (written by the runner)
LOG_FILE = "runner.log"

#: Settings with defaults: fmax in eV/Å; ``fixed_atoms`` maps a frame index to atom indices kept fixed
#: (a frame's info entry ``fixed_atoms``, a JSON list string, is honoured too).
DEFAULT_SETTINGS = {
    "optimizer": "BFGS",
    "fmax": 0.05,
    "max_steps": 200,
    "relax_cell": False,
    "fixed_atoms": {},
    "device": "cpu",
    "num_threads": None,
}
OPTIMIZERS = ("BFGS", "FIRE", "LBFGS")


def structures_elements(structures) -> list[str]:
    """Sorted element symbols of a LabelledDatasetData or StructureData."""
    if isinstance(structures, LabelledDatasetData):
        return list(structures.base.attributes.get("elements", []))
    return sorted(structures.get_symbols_set())


def structures_frames(structures) -> Frames:
    """The frames of a LabelledDatasetData, or the single frame of a StructureData."""
    if isinstance(structures, LabelledDatasetData):
        return structures.frames
    return Frames.from_atoms([structures.get_ase()])


def check_model_covers(model, elements, what: str) -> str | None:
    missing = model.covers(elements)
    if missing:
        return f"model {model.model_name} (pk {model.pk}) does not cover element(s) {', '.join(missing)} present in {what}"
    return None


def validate_settings(settings: dict, defaults: dict, name: str) -> str | None:
    """A message naming the first problem of ``settings`` (unknown key, bad optimizer/fmax/max_steps), else None."""
    unknown = set(settings) - set(defaults)
    if unknown:
        return f"unknown {name} setting(s) {', '.join(sorted(unknown))}; known: {', '.join(defaults)}"
    if "optimizer" in settings and str(settings["optimizer"]).upper() not in OPTIMIZERS:
        return f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {settings['optimizer']!r}"
    try:
        if "fmax" in settings and not float(settings["fmax"]) > 0:
            return f"fmax must be > 0 eV/Å, got {settings['fmax']}"
        if "max_steps" in settings and int(settings["max_steps"]) < 0:
            return f"max_steps must be >= 0, got {settings['max_steps']}"
    except (TypeError, ValueError) as exc:
        return f"invalid fmax/max_steps: {exc}"
    return None


def validate_inputs(inputs, _):
    """Refuse before submission: elements the model does not cover, bad settings, bad fixed atoms."""
    model, structures = inputs.get("model"), inputs.get("structures")
    if model is not None and structures is not None:
        message = check_model_covers(model, structures_elements(structures), f"structures pk {structures.pk}")
        if message:
            return message
    settings = inputs["settings"].get_dict() if "settings" in inputs else {}
    message = validate_settings(settings, DEFAULT_SETTINGS, "relax")
    if message:
        return message
    fixed = settings.get("fixed_atoms") or {}
    if not isinstance(fixed, dict):
        return "settings fixed_atoms must map a frame index to a list of atom indices, e.g. {'0': [0, 1, 2]}"
    if structures is not None:
        n_atoms = list(structures.get_array("n_atoms")) if isinstance(structures, LabelledDatasetData) else [
            len(structures.sites)
        ]
        for key, indices in fixed.items():
            try:
                frame = int(key)
                atoms = [int(i) for i in indices]
            except (TypeError, ValueError):
                return f"settings fixed_atoms: {key!r}: {indices!r} is not frame index -> list of atom indices"
            if not 0 <= frame < len(n_atoms):
                return f"settings fixed_atoms names frame {frame}, but there are {len(n_atoms)} frame(s)"
            bad = [i for i in atoms if not 0 <= i < n_atoms[frame]]
            if bad:
                return f"settings fixed_atoms: atom index(es) {bad} out of range for frame {frame} ({n_atoms[frame]} atoms)"
    if settings.get("relax_cell") and structures is not None:
        frames = structures_frames(structures)
        flat = [i for i in range(len(frames)) if not frames.pbc[i].all()]
        if flat:
            return f"relax_cell needs 3D-periodic frames; frame(s) {flat} are not"
    return None


def runner_input(model: MlipModelData, settings: dict, **files) -> dict:
    """The runner's input.json content: model, settings (``device`` etc.) and file names."""
    params = {"family": model.family, "model_name": model.model_name, "model_file": f"model_{model.filename}"}
    params.update({k: v for k, v in settings.items() if v is not None})
    params.update(files)
    return params


def write_runner_files(folder, frames: Frames, params: dict) -> None:
    buffer = io.StringIO()
    write_extxyz(frames, buffer)
    with folder.open(FRAMES_FILE, "w", encoding="utf-8") as handle:
        handle.write(buffer.getvalue())
    with folder.open(INPUT_FILE, "w", encoding="utf-8") as handle:
        json.dump(params, handle, indent=2)


def calcinfo_for(code, model: MlipModelData, subcommand: str, retrieve: list[str]) -> datastructures.CalcInfo:
    codeinfo = datastructures.CodeInfo()
    codeinfo.code_uuid = code.uuid
    codeinfo.cmdline_params = [subcommand, "--input", INPUT_FILE]
    codeinfo.stdout_name = LOG_FILE
    codeinfo.withmpi = False
    calcinfo = datastructures.CalcInfo()
    calcinfo.codes_info = [codeinfo]
    calcinfo.local_copy_list = [(model.uuid, model.filename, f"model_{model.filename}")]
    calcinfo.retrieve_list = [*retrieve, STATUS_FILE, LOG_FILE]
    return calcinfo


def define_common(spec, parser_name: str) -> None:
    """Model input, serial localhost defaults and the exit codes shared with ``reactmlip.evaluate``."""
    spec.input("model", valid_type=MlipModelData, help="The MLIP model file and its metadata.")
    spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
    spec.inputs["metadata"]["options"]["withmpi"].default = False
    spec.inputs["metadata"]["options"]["parser_name"].default = parser_name
    spec.exit_code(300, "ERROR_MISSING_OUTPUT", message="The runner wrote no {filename}: see runner.log.")
    spec.exit_code(310, "ERROR_RUNNER_INPUT", message="The runner could not read its input: {message}")
    spec.exit_code(311, "ERROR_ELEMENT_NOT_COVERED", message="{message}")
    spec.exit_code(312, "ERROR_MODEL_LOAD", message="The model could not be loaded: {message}")
    spec.exit_code(313, "ERROR_RUNNER_FAILED", message="The runner failed: {message}")
    spec.exit_code(320, "ERROR_INCONSISTENT_OUTPUT", message="The output does not match the input: {message}")
    spec.exit_code(401, "ERROR_NOT_CONVERGED", message="Not converged (outputs are stored): {message}")


class RelaxCalculation(CalcJob):
    """Relax every frame of ``structures`` with one MLIP through ASE (BFGS, FIRE or LBFGS) until the largest
    force on a free atom is below ``fmax`` (eV/Å) or ``max_steps`` steps; fixed atoms stay bit-identical.

    Runs ``reactmlip-runner relax`` on the computer of ``code``. Exit 401 when a frame did not converge
    (all outputs are still stored, ``results`` says which).
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_common(spec, "reactmlip.relax")
        spec.input("structures", valid_type=(LabelledDatasetData, orm.StructureData),
                   help="Frames to relax (labels unused), or one StructureData.")
        spec.input("settings", valid_type=orm.Dict, required=False, help=f"Settings, defaults {DEFAULT_SETTINGS}.")
        spec.inputs.validator = validate_inputs
        spec.output("relaxed", valid_type=LabelledDatasetData,
                    help="Relaxed frames labelled with the model's energy (eV), forces (eV/Å), stress (eV/Å^3, "
                    "3D-periodic only); frame info role='mlip_relaxed', converged, steps, model_name.")
        spec.output("results", valid_type=orm.Dict,
                    help="Per frame: converged, steps, fmax (eV/Å), energy (eV), fixed_atoms, seconds; timings.")
        spec.output("trajectory", valid_type=orm.ArrayData, required=False,
                    help="Per frame i: arrays energies_i (eV) and fmax_i (eV/Å) at every optimiser step.")

    def prepare_for_submission(self, folder):
        settings = {**DEFAULT_SETTINGS, **(self.inputs.settings.get_dict() if "settings" in self.inputs else {})}
        settings["fixed_atoms"] = {str(k): list(v) for k, v in (settings["fixed_atoms"] or {}).items()}
        params = runner_input(self.inputs.model, settings, frames_file=FRAMES_FILE, output_file=OUTPUT_FILE,
                              results_file=RESULTS_FILE, trajectory_file=TRAJECTORY_FILE)
        write_runner_files(folder, structures_frames(self.inputs.structures), params)
        return calcinfo_for(self.inputs.code, self.inputs.model, "relax", [OUTPUT_FILE, RESULTS_FILE, TRAJECTORY_FILE])
