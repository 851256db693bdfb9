"""The contract between ``reactmlip-runner`` and its CalcJobs and parsers: written here once, read by both sides.

- exit codes: the runner's process exit status, the label and message of the CalcJob exit code it becomes,
  and the exit codes only a parser reports (a missing or inconsistent output file, an MD blow-up);
- file names: ``input.json`` (what the CalcJob writes), ``status.json`` (how the run ended), ``runner.log``
  (the runner's stdout) and each task's outputs;
- every default and allowed value of the settings of each task (evaluate, relax, neb, md) and of the
  fine-tuning input, and one settings check per task (:func:`check_settings`) that the runner applies to
  ``input.json`` and the CalcJob's input validator applies before submission;
- the ``fixed_atoms`` convention: atom indices (0-based) kept fixed, given in the settings or carried by a
  frame's info as a JSON list string.

Standard library only: the CalcJobs import this module without numpy, torch or ASE.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Mapping
from typing import Any

# ------------------------------------------------------------------------------------ exit codes


@dataclasses.dataclass(frozen=True)
class ExitCode:
    """One outcome: ``status`` the runner's process exit status (None: only a parser reports it), ``label``
    and ``calcjob_status`` / ``message`` (a template with ``{message}`` or ``{filename}``) of the CalcJob exit
    code, ``meaning`` what ``status.json`` and ``reactmlip-runner --help`` say about it."""

    status: int | None
    label: str
    calcjob_status: int
    message: str
    meaning: str = ""


EXIT_OK = 0
EXIT_INPUT = 10
EXIT_ELEMENTS = 11
EXIT_MODEL_LOAD = 12
EXIT_EVALUATION = 13
EXIT_NOT_CONVERGED = 14
EXIT_DIVERGED = 15

#: The runner's failures, in exit status order; each becomes the CalcJob exit code of the same label.
RUNNER_EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(EXIT_INPUT, "ERROR_RUNNER_INPUT", 310, "The runner refused its input: {message}",
             "an input file is missing, unreadable or invalid"),
    ExitCode(EXIT_ELEMENTS, "ERROR_ELEMENT_NOT_COVERED", 311, "{message}",
             "the frames contain an element the model does not cover"),
    ExitCode(EXIT_MODEL_LOAD, "ERROR_MODEL_LOAD", 312, "The model could not be loaded: {message}",
             "the model failed to load"),
    ExitCode(EXIT_EVALUATION, "ERROR_RUNNER_FAILED", 313, "The runner failed: {message}", "the evaluation failed"),
    ExitCode(EXIT_NOT_CONVERGED, "ERROR_NOT_CONVERGED", 401, "Not converged (outputs are stored): {message}",
             "an optimisation did not converge (its outputs are written)"),
    ExitCode(EXIT_DIVERGED, "ERROR_TRAINING_DIVERGED", 315, "{message}",
             "the training diverged: the loss became NaN or infinite (history and report written, no model)"),
)

#: What a parser finds in the retrieved files of any runner task.
PARSER_EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(None, "ERROR_MISSING_OUTPUT", 300, "The runner wrote no {filename}: see runner.log."),
    ExitCode(None, "ERROR_INCONSISTENT_OUTPUT", 320, "The outputs do not match the inputs: {message}"),
)

#: Parser-only exit codes of one task.
TASK_EXIT_CODES: dict[str, tuple[ExitCode, ...]] = {
    "md": (
        ExitCode(None, "ERROR_MD_BLEW_UP", 402,
                 "A trajectory blew up (outputs are stored, fail_on_blowup was set): {message}"),
        ExitCode(None, "ERROR_NO_FRAMES_SAVED", 403, "No frame was saved: {message}"),
    ),
}

#: Runner exit status -> what it means (``status.json`` ``meaning``, the ``--help`` epilog).
EXIT_CODES: dict[int, str] = {EXIT_OK: "ok", **{code.status: code.meaning for code in RUNNER_EXIT_CODES}}

#: The CalcJob exit code label a runner exit status not in :data:`RUNNER_EXIT_CODES` becomes.
FALLBACK_LABEL = "ERROR_RUNNER_FAILED"


def calcjob_exit_codes(task: str) -> tuple[ExitCode, ...]:
    """Every exit code the CalcJob of ``task`` declares: the runner's, the parsers' and the task's own."""
    return (*RUNNER_EXIT_CODES, *PARSER_EXIT_CODES, *TASK_EXIT_CODES.get(task, ()))


def label_of(status: int) -> str:
    """The CalcJob exit code label of a non-zero runner exit status."""
    for code in RUNNER_EXIT_CODES:
        if code.status == status:
            return code.label
    return FALLBACK_LABEL


class RunnerError(Exception):
    """A failure with its runner exit status; the message goes to stderr and ``status.json``."""

    def __init__(self, exit_code: int, message: str):
        super().__init__(message)
        self.exit_code = exit_code


# ------------------------------------------------------------------------------------ file names

INPUT_FILE = "input.json"
STATUS_FILE = "status.json"
LOG_FILE = "runner.log"
#: The input frames the CalcJobs write: a frames archive (``aiida_reactmlip.frames.write_frames_npz``); the runner
#: reads extended XYZ as well (any other suffix), e.g. from a hand-written input.json.
FRAMES_FILE = "frames.npz"
#: The CalcJob copies the model file as ``MODEL_PREFIX + filename`` (``BASE_MODEL_PREFIX`` for fine-tuning).
MODEL_PREFIX = "model_"
BASE_MODEL_PREFIX = "base_"

PREDICTIONS_FILE = "predictions.npz"
TIMING_FILE = "timing.json"
RELAXED_FILE = "relaxed.extxyz"
RELAX_RESULTS_FILE = "results.json"
RELAX_TRAJECTORY_FILE = "trajectory.npz"
BAND_FILE = "band.extxyz"
PROFILE_FILE = "profile.json"
MD_TRAJECTORY_FILE = "trajectory.extxyz"
MD_REPORT_FILE = "report.json"
MD_THERMO_FILE = "thermo.npz"
TRAIN_FILE = "train.extxyz"
VALID_FILE = "valid.extxyz"
HISTORY_FILE = "history.json"
FINETUNE_REPORT_FILE = "report.json"
TRAINING_LOG_FILE = "training.log"
TRAINING_WORKDIR = "training"
FINETUNED_MODEL_STEM = "finetuned"
PHYSICS_RESULTS_FILE = "physics.json"
PHYSICS_ARRAYS_FILE = "physics.npz"

#: Output file keys of each task's ``input.json`` -> default file name.
OUTPUT_FILES: dict[str, dict[str, str]] = {
    "evaluate": {"output_file": PREDICTIONS_FILE, "timing_file": TIMING_FILE},
    "relax": {"output_file": RELAXED_FILE, "results_file": RELAX_RESULTS_FILE,
              "trajectory_file": RELAX_TRAJECTORY_FILE},
    "neb": {"output_file": BAND_FILE, "results_file": PROFILE_FILE},
    "md": {"output_file": MD_TRAJECTORY_FILE, "results_file": MD_REPORT_FILE, "thermo_file": MD_THERMO_FILE},
    "physics": {"results_file": PHYSICS_RESULTS_FILE, "arrays_file": PHYSICS_ARRAYS_FILE},
}

#: ``reactmlip.evaluate_many``: the runner command, and the keys of its ``input.json`` (see
#: :mod:`aiida_reactmlip.runner.evaluate`): models and frame sets by key, evaluate settings, the timing file.
EVALUATE_MANY = "evaluate_many"
EVALUATE_MANY_KEYS = ("models", "frames", "settings", "timing_file")
#: A key of a model or frame set of ``evaluate_many``: it names files and link labels (at most 40 characters,
#: no double underscore: AiiDA reads ``__`` in a link label as a namespace separator).
MANY_KEY_PATTERN = r"[A-Za-z](_?[A-Za-z0-9])*"
MANY_KEY_MAX_LENGTH = 40


def check_many_key(key: Any, what: str) -> str:
    """``key`` when it is a valid model or frame-set key of ``evaluate_many``, else ValueError naming ``what``."""
    import re

    if not isinstance(key, str) or len(key) > MANY_KEY_MAX_LENGTH or not re.fullmatch(MANY_KEY_PATTERN, key):
        raise ValueError(f"{what} key {key!r} is invalid: use letters, digits and single underscores, starting "
                         f"with a letter, at most {MANY_KEY_MAX_LENGTH} characters")
    return key


def many_predictions_file(model_key: str, frames_key: str) -> str:
    """The predictions file ``evaluate_many`` writes for model ``model_key`` on frame set ``frames_key``."""
    return f"predictions__{model_key}__{frames_key}.npz"


def many_output_key(model_key: str, frames_key: str) -> str:
    """The output port (``predictions.<model key>.<frame-set key>``) of model ``model_key`` on ``frames_key``."""
    return f"predictions.{model_key}.{frames_key}"


#: File suffix of a model file of each family (what its loader and users expect).
MODEL_SUFFIX = {"chgnet": ".pth.tar", "sevenn": ".pth", "mace": ".model"}


def finetuned_model_filename(family: str) -> str:
    """Name of the fine-tuned model file the runner writes (and the CalcJob retrieves)."""
    return FINETUNED_MODEL_STEM + MODEL_SUFFIX[family]


# ------------------------------------------------------------------------- defaults and allowed values

MODES = ("auto", "batched", "ase")
OPTIMIZERS = ("BFGS", "FIRE", "LBFGS")
INTERPOLATIONS = ("idpp", "linear")
ENSEMBLES = ("langevin", "nvt_berendsen")
#: Families that can train a model without a base model.
FROM_SCRATCH_FAMILIES = ("mace",)

#: ``reactmlip.evaluate`` settings. ``batch_size``: frames per batch in ``batched`` mode; ``mode``: ``auto``,
#: ``batched`` or ``ase``; ``workers``: processes sharing the frames (None: automatic); ``num_threads``: torch
#: threads per process (None: cores / workers).
EVALUATE_SETTINGS: dict[str, Any] = {
    "device": "cpu", "batch_size": 16, "mode": "auto", "compute_stress": True, "workers": None, "num_threads": None,
}

#: ``reactmlip.relax`` settings: fmax in eV/Å; ``fixed_atoms`` maps a frame index to atom indices kept fixed
#: (a frame's info entry ``fixed_atoms``, a JSON list string, is honoured too).
RELAX_SETTINGS: dict[str, Any] = {
    "optimizer": "BFGS", "fmax": 0.05, "max_steps": 200, "relax_cell": False, "fixed_atoms": {}, "device": "cpu",
    "num_threads": None,
}

#: ``reactmlip.neb`` settings. ``n_images``: images between the end states (used when the frames are only
#: the two end states); fmax and endpoint_fmax (None: fmax) in eV/Å; ``fixed_atoms``: atom indices fixed in
#: every image.
NEB_SETTINGS: dict[str, Any] = {
    "n_images": 5, "climb": True, "fmax": 0.05, "max_steps": 300, "optimizer": "FIRE", "relax_endpoints": False,
    "endpoint_fmax": None, "endpoint_max_steps": 200, "interpolation": "idpp", "fixed_atoms": [], "device": "cpu",
    "num_threads": None,
}

#: ``reactmlip.md`` settings (units: K, fs, 1/fs, eV/Å, Å). ``fixed_atoms``: atom indices fixed in every start
#: frame, or {frame index: [atom indices]}; ``vacuum``: Å on each side of a boxed molecule.
MD_SETTINGS: dict[str, Any] = {
    "ensemble": "langevin", "temperature_K": 300.0, "timestep_fs": 0.5, "n_steps": 100, "save_every": 10,
    "save_start": False, "friction": 0.01, "taut_fs": 100.0, "seed": 0, "fixed_atoms": [], "max_force": 50.0,
    "min_distance": 0.5, "vacuum": 10.0, "device": "cpu", "num_threads": None, "dtype": None,
}

#: ``reactmlip.physics`` settings (units: Å, eV, K, fs, ps, 1/fs; see :mod:`aiida_reactmlip.physics`).
#: Diatomic curves of every pair of ``elements`` (mixed pairs too with ``heteronuclear``) at ``distances``
#: (None: 0.50-3.00 Å every 0.05, then 3.1-6.0 Å every 0.1), alone in a ``box`` Å cell (periodic only with
#: ``pbc``), forces checked by central differences of half-step ``fd_step`` (None: on the grid). ``nve``,
#: ``ramp`` and ``reactions``: lists of entries naming frames of the frames file by ``info["name"]``, each
#: completed from :data:`PHYSICS_NVE_ENTRY`, :data:`PHYSICS_RAMP_ENTRY`, :data:`PHYSICS_REACTION_ENTRY`. MD
#: frames are first relaxed (FIRE, ``relax_steps`` steps to ``relax_fmax``; 0 steps: not relaxed); NVE samples
#: every ``sample_every`` steps, the ramp checks every ``check_every`` steps with Langevin friction
#: ``friction_per_fs``; overlap below ``overlap_distance``; bonds by ``bond_factor`` / ``break_factor`` x the
#: covalent radii; ``sign_tolerance``: a reaction energy within it counts as thermoneutral.
PHYSICS_SETTINGS: dict[str, Any] = {
    "elements": [], "heteronuclear": True, "distances": None, "box": 20.0, "pbc": False, "fd_step": 0.002,
    "nve": [], "ramp": [], "reactions": [], "relax_fmax": 0.05, "relax_steps": 100, "seed": 0,
    "sample_every": 10, "check_every": 10, "friction_per_fs": 0.02, "overlap_distance": 0.5, "bond_factor": 1.3,
    "break_factor": 1.6, "sign_tolerance": 0.0, "device": "cpu", "num_threads": None,
}
#: One NVE entry: the frame, start temperatures (K), time step (fs), length (ps).
PHYSICS_NVE_ENTRY: dict[str, Any] = {"frame": None, "temperatures_K": [300.0, 600.0], "timestep_fs": 0.5,
                                     "duration_ps": 1.0}
#: One heating ramp: the frame, start and end temperature (K), length (ps), time step (fs), ``allowed_breaks``
#: (pairs like "H-H" whose bonds may break; None: bonds are not checked, only fragments and overlaps).
PHYSICS_RAMP_ENTRY: dict[str, Any] = {"frame": None, "t_start": 300.0, "t_end": 3000.0, "duration_ps": 0.5,
                                      "timestep_fs": 1.0, "allowed_breaks": None}
#: One reaction: its name, the initial and final frame names, the DFT reaction energy (eV) and where it is from.
PHYSICS_REACTION_ENTRY: dict[str, Any] = {"name": None, "initial": None, "final": None,
                                          "dft_reaction_energy": None, "dft_source": None}

SETTINGS: dict[str, dict[str, Any]] = {
    "evaluate": EVALUATE_SETTINGS, "relax": RELAX_SETTINGS, "neb": NEB_SETTINGS, "md": MD_SETTINGS,
    "physics": PHYSICS_SETTINGS,
}

#: Keys of every evaluate/relax/neb/md ``input.json`` besides the settings and output files: ``model_file``
#: (or only a registered ``model_name``) and ``dtype`` (MACE: ``float64`` or ``float32``); ``family`` and
#: ``frames_file`` are required.
MODEL_KEYS: dict[str, Any] = {"model_file": None, "model_name": None, "dtype": None}
REQUIRED_KEYS = ("family", "frames_file")


def input_defaults(task: str) -> dict[str, Any]:
    """Every optional key of an evaluate/relax/neb/md ``input.json`` with its default."""
    return {**MODEL_KEYS, **SETTINGS[task], **OUTPUT_FILES[task]}


#: Keys of a ``finetune`` input file, with defaults (``family`` and ``train_file`` are required).
FINETUNE_INPUT_DEFAULTS: dict[str, Any] = {
    "base_model_file": None,
    "model_name": None,
    "valid_file": None,
    "output_model_file": None,
    "history_file": HISTORY_FILE,
    "report_file": FINETUNE_REPORT_FILE,
    "log_file": TRAINING_LOG_FILE,
    "workdir": TRAINING_WORKDIR,
    "hyperparameters": {},
}

#: Fewest training frames accepted; MACE without validation frames but with ``valid_fraction`` > 0 holds
#: out part of its training set, and needs one frame more.
MIN_TRAIN_FRAMES = 1
MIN_TRAIN_FRAMES_MACE_WITHOUT_VALIDATION = 2

# -------------------------------------------------------------------------- the fixed_atoms convention


def index_list(value: Any, what: str) -> list[int]:
    """``value`` as a sorted list of distinct atom indices; ``ValueError`` unless a list of integers >= 0."""
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(i, numbers.Integral) and not isinstance(i, bool) and i >= 0 for i in value
    ):
        raise ValueError(f"{what} must be a list of atom indices (integers >= 0), got {value!r}")
    return sorted({int(i) for i in value})


def frame_index_map(value: Mapping, what: str) -> dict[int, list[int]]:
    """{frame index: sorted atom indices} of a mapping whose keys are frame indices (JSON: strings)."""
    out = {}
    for key, indices in value.items():
        try:
            frame = int(key)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what} keys must be frame indices, got {key!r}") from exc
        if frame < 0:
            raise ValueError(f"{what} keys must be frame indices >= 0, got {key!r}")
        out[frame] = index_list(indices, f"{what}[{key}]")
    return out


def fixed_atoms_from_info(info: Mapping[str, Any], what: str) -> list[int]:
    """The atoms a frame's info keeps fixed: its ``fixed_atoms`` entry, a JSON list string (or a list)."""
    carried = info.get("fixed_atoms")
    if carried is None:
        return []
    try:
        value = json.loads(carried) if isinstance(carried, str) else carried
        return index_list(value, f"{what}: info fixed_atoms")
    except (json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"{what}: info 'fixed_atoms' is not a JSON list of atom indices: {exc}") from exc


def fixed_atoms_info(fixed: list[int]) -> str:
    """The frame info entry ``fixed_atoms`` of atoms kept fixed (a JSON list string)."""
    return json.dumps([int(i) for i in fixed])


def check_in_range(fixed: list[int], n_atoms: int, frame: int) -> None:
    """``ValueError`` when atom indices ``fixed`` name an atom frame ``frame`` of ``n_atoms`` atoms lacks."""
    bad = sorted(i for i in fixed if i >= n_atoms)
    if bad:
        raise ValueError(f"fixed_atoms: atom index(es) {bad} out of range for frame {frame} ({n_atoms} atoms)")


def check_fixed_atoms(fixed: list[int] | Mapping[int, list[int]], n_atoms: list[int]) -> None:
    """``ValueError`` when ``fixed`` (one list for every frame, or {frame: list}) names a frame or an atom that
    frames of ``n_atoms`` atoms do not have."""
    per_frame = fixed if isinstance(fixed, Mapping) else dict.fromkeys(range(len(n_atoms)), fixed)
    for frame, indices in per_frame.items():
        if not 0 <= frame < len(n_atoms):
            raise ValueError(f"fixed_atoms names frame {frame}, but there are {len(n_atoms)} frame(s)")
        check_in_range(indices, n_atoms[frame], frame)


# ------------------------------------------------------------------------------------ settings checks


def _known(raw: Mapping, task: str) -> dict[str, Any]:
    unknown = sorted(set(raw) - set(SETTINGS[task]))
    if unknown:
        raise ValueError(f"unknown {task} setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS[task])}")
    return {**SETTINGS[task], **raw}


def _integer(params: dict, key: str, minimum: int | None = None, optional: bool = False) -> None:
    """``params[key]`` as an int: an integer or an integral float (not a bool or a string), >= ``minimum``."""
    value = params[key]
    if value is None and optional:
        return
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or int(value) != value):
        raise ValueError(f"{key} must be an integer{' or null' if optional else ''}, got {value!r}")
    params[key] = int(value)
    if minimum is not None and params[key] < minimum:
        raise ValueError(f"{key} must be >= {minimum}, got {params[key]}")


def _positive(params: dict, key: str, unit: str) -> None:
    try:
        params[key] = float(params[key])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{key} must be a number ({unit}), got {params[key]!r}") from exc
    if not params[key] > 0 or not math.isfinite(params[key]):
        raise ValueError(f"{key} must be > 0 {unit}, got {params[key]}")


def _optimizer(params: dict) -> None:
    optimizer = str(params["optimizer"]).upper()
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {params['optimizer']!r}")
    params["optimizer"] = optimizer


def check_evaluate_settings(raw: Mapping) -> dict[str, Any]:
    """Evaluate settings (any subset of :data:`EVALUATE_SETTINGS`) checked, normalised, defaults filled."""
    params = _known(raw, "evaluate")
    if params["mode"] not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {params['mode']!r}")
    _integer(params, "batch_size", minimum=1)
    _integer(params, "workers", minimum=1, optional=True)
    _integer(params, "num_threads", minimum=1, optional=True)
    params["compute_stress"] = bool(params["compute_stress"])
    return params


def check_relax_settings(raw: Mapping) -> dict[str, Any]:
    """Relax settings (any subset of :data:`RELAX_SETTINGS`) checked and normalised, defaults filled;
    ``fixed_atoms`` comes back as {frame index: sorted atom indices}."""
    params = _known(raw, "relax")
    _optimizer(params)
    _positive(params, "fmax", "eV/Å")
    _integer(params, "max_steps", minimum=0)
    _integer(params, "num_threads", minimum=1, optional=True)
    params["relax_cell"] = bool(params["relax_cell"])
    fixed = params["fixed_atoms"] or {}
    if not isinstance(fixed, Mapping):
        raise ValueError(f"fixed_atoms must map a frame index to a list of atom indices, e.g. {{'0': [0, 1, 2]}}, "
                         f"got {fixed!r}")
    params["fixed_atoms"] = frame_index_map(fixed, "fixed_atoms")
    return params


def check_neb_settings(raw: Mapping) -> dict[str, Any]:
    """NEB settings (any subset of :data:`NEB_SETTINGS`) checked and normalised, defaults filled
    (``endpoint_fmax`` None becomes ``fmax``); ``fixed_atoms`` comes back as a sorted list."""
    params = _known(raw, "neb")
    _optimizer(params)
    _positive(params, "fmax", "eV/Å")
    if params["endpoint_fmax"] is None:
        params["endpoint_fmax"] = params["fmax"]
    _positive(params, "endpoint_fmax", "eV/Å")
    _integer(params, "max_steps", minimum=0)
    _integer(params, "endpoint_max_steps", minimum=0)
    _integer(params, "num_threads", minimum=1, optional=True)
    try:
        _integer(params, "n_images", minimum=1)
    except ValueError as exc:
        raise ValueError(f"n_images (images between the end states) must be >= 1, got {params['n_images']!r}") from exc
    if params["interpolation"] not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {params['interpolation']!r}")
    params["climb"] = bool(params["climb"])
    params["relax_endpoints"] = bool(params["relax_endpoints"])
    params["fixed_atoms"] = index_list(params["fixed_atoms"] or [], "fixed_atoms")
    return params


def check_md_settings(raw: Mapping) -> dict[str, Any]:
    """MD settings (any subset of :data:`MD_SETTINGS`) checked and normalised, defaults filled.

    Raises ``ValueError`` naming the first problem: an unknown key, an ensemble other than ``langevin`` /
    ``nvt_berendsen``, a negative temperature, a non-positive timestep / friction / coupling time,
    ``save_every`` < 1, settings under which no frame would be saved, fixed atoms that are not indices.
    ``fixed_atoms`` comes back as a list (every start frame) or a dict {frame index: sorted list}.
    """
    params = _known(raw, "md")
    ensemble = str(params["ensemble"]).lower().replace("-", "_")
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {', '.join(ENSEMBLES)}, got {params['ensemble']!r}")
    params["ensemble"] = ensemble
    for key in ("temperature_K", "timestep_fs", "friction", "taut_fs", "max_force", "min_distance", "vacuum"):
        try:
            params[key] = float(params[key])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid md setting: {key} must be a number, got {params[key]!r}") from exc
        if not math.isfinite(params[key]):
            raise ValueError(f"{key} must be finite, got {params[key]}")
    for key in ("n_steps", "save_every", "seed"):
        _integer(params, key)
    _integer(params, "num_threads", minimum=1, optional=True)
    if params["temperature_K"] < 0:
        raise ValueError(f"temperature_K must be >= 0 K, got {params['temperature_K']}")
    for key, unit in (("timestep_fs", "fs"), ("friction", "1/fs"), ("taut_fs", "fs"), ("max_force", "eV/Å")):
        if not params[key] > 0:
            raise ValueError(f"{key} must be > 0 {unit}, got {params[key]}")
    if params["timestep_fs"] > 10:
        raise ValueError(f"timestep_fs {params['timestep_fs']} fs is far too large for atomistic MD (use 0.25-2 fs)")
    if params["min_distance"] < 0:
        raise ValueError(f"min_distance must be >= 0 Å, got {params['min_distance']}")
    for key, minimum in (("n_steps", 0), ("save_every", 1), ("seed", 0)):
        if params[key] < minimum:
            raise ValueError(f"{key} must be >= {minimum}, got {params[key]}")
    params["save_start"] = bool(params["save_start"])
    if params["n_steps"] < params["save_every"] and not params["save_start"]:
        raise ValueError(
            f"no frame would be saved: n_steps {params['n_steps']} < save_every {params['save_every']} "
            "and save_start is false"
        )
    fixed = params["fixed_atoms"] or []
    params["fixed_atoms"] = (frame_index_map(fixed, "fixed_atoms") if isinstance(fixed, Mapping)
                             else index_list(fixed, "fixed_atoms"))
    return params


def _entry(raw: Any, defaults: dict[str, Any], what: str, required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"each {what} entry must be a mapping, got {raw!r}")
    unknown = sorted(set(raw) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {what} key(s) {', '.join(unknown)}; known: {', '.join(defaults)}")
    entry = {**defaults, **raw}
    for key in required:
        if not isinstance(entry[key], str) or not entry[key]:
            raise ValueError(f"{what} entry needs '{key}' (a frame or reaction name), got {entry[key]!r}")
    return entry


def _number(params: dict, key: str, unit: str, minimum: float | None = None, positive: bool = False) -> None:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number ({unit}), got {value!r}")
    params[key] = float(value)
    if positive and not params[key] > 0:
        raise ValueError(f"{key} must be > 0 {unit}, got {params[key]}")
    if minimum is not None and params[key] < minimum:
        raise ValueError(f"{key} must be >= {minimum} {unit}, got {params[key]}")


def check_physics_settings(raw: Mapping) -> dict[str, Any]:
    """Physics settings (any subset of :data:`PHYSICS_SETTINGS`) checked and normalised, defaults filled, every
    ``nve`` / ``ramp`` / ``reactions`` entry completed; ``ValueError`` naming the first problem."""
    params = _known(raw, "physics")
    elements = params["elements"]
    if not isinstance(elements, (list, tuple)) or not all(isinstance(e, str) and e.strip() for e in elements):
        raise ValueError(f"elements must be a list of element symbols, got {elements!r}")
    params["elements"] = list(dict.fromkeys(e.strip() for e in elements))
    if params["distances"] is not None:
        distances = params["distances"]
        if (not isinstance(distances, (list, tuple)) or len(distances) < 3
                or not all(isinstance(d, numbers.Real) and not isinstance(d, bool) and d > 0 for d in distances)):
            raise ValueError(f"distances must be a list of at least 3 positive numbers (Å), got {distances!r}")
        params["distances"] = sorted(float(d) for d in distances)
    for key, unit in (("box", "Å"), ("relax_fmax", "eV/Å"), ("friction_per_fs", "1/fs"), ("bond_factor", ""),
                      ("break_factor", "")):
        _number(params, key, unit, positive=True)
    if params["fd_step"] is not None:
        _number(params, "fd_step", "Å", positive=True)
    _number(params, "overlap_distance", "Å", minimum=0.0)
    _number(params, "sign_tolerance", "eV", minimum=0.0)
    if params["break_factor"] < params["bond_factor"]:
        raise ValueError(f"break_factor ({params['break_factor']}) must be >= bond_factor ({params['bond_factor']})")
    _integer(params, "relax_steps", minimum=0)
    _integer(params, "seed", minimum=0)
    _integer(params, "sample_every", minimum=1)
    _integer(params, "check_every", minimum=1)
    _integer(params, "num_threads", minimum=1, optional=True)
    params["heteronuclear"] = bool(params["heteronuclear"])
    params["pbc"] = bool(params["pbc"])
    for key in ("nve", "ramp", "reactions"):
        if not isinstance(params[key], (list, tuple)):
            raise ValueError(f"{key} must be a list of entries, got {params[key]!r}")
    nve = []
    for raw_entry in params["nve"]:
        entry = _entry(raw_entry, PHYSICS_NVE_ENTRY, "nve", ("frame",))
        _number(entry, "timestep_fs", "fs", positive=True)
        _number(entry, "duration_ps", "ps", positive=True)
        temps = entry["temperatures_K"]
        if not isinstance(temps, (list, tuple)) or not temps:
            raise ValueError(f"nve temperatures_K must be a non-empty list (K), got {temps!r}")
        for t in temps:
            _number({"temperatures_K": t}, "temperatures_K", "K", minimum=0.0)
        entry["temperatures_K"] = [float(t) for t in temps]
        if entry["timestep_fs"] > 10:
            raise ValueError(f"nve timestep_fs {entry['timestep_fs']} fs is far too large (use 0.25-2 fs)")
        nve.append(entry)
    ramp = []
    for raw_entry in params["ramp"]:
        entry = _entry(raw_entry, PHYSICS_RAMP_ENTRY, "ramp", ("frame",))
        for key, unit in (("t_start", "K"), ("t_end", "K")):
            _number(entry, key, unit, minimum=0.0)
        _number(entry, "timestep_fs", "fs", positive=True)
        _number(entry, "duration_ps", "ps", positive=True)
        if entry["t_end"] < entry["t_start"]:
            raise ValueError(f"ramp t_end ({entry['t_end']} K) must not be below t_start ({entry['t_start']} K)")
        breaks = entry["allowed_breaks"]
        if breaks is not None and (not isinstance(breaks, (list, tuple))
                                   or not all(isinstance(b, str) and b.count("-") == 1 for b in breaks)):
            raise ValueError(f"ramp allowed_breaks must be null or a list of pairs like 'H-H', got {breaks!r}")
        entry["allowed_breaks"] = None if breaks is None else list(breaks)
        ramp.append(entry)
    reactions = []
    for raw_entry in params["reactions"]:
        entry = _entry(raw_entry, PHYSICS_REACTION_ENTRY, "reactions", ("name", "initial", "final"))
        if entry["dft_reaction_energy"] is not None:
            _number(entry, "dft_reaction_energy", "eV")
        reactions.append(entry)
    params.update(nve=nve, ramp=ramp, reactions=reactions)
    return params


def physics_frame_names(settings: Mapping) -> list[str]:
    """The frame names checked ``physics`` settings refer to, in order of first mention."""
    names = [e["frame"] for e in settings["nve"]] + [e["frame"] for e in settings["ramp"]]
    names += [name for e in settings["reactions"] for name in (e["initial"], e["final"])]
    return list(dict.fromkeys(names))


_CHECKS = {"evaluate": check_evaluate_settings, "relax": check_relax_settings, "neb": check_neb_settings,
           "md": check_md_settings, "physics": check_physics_settings}


def check_settings(task: str, raw: Mapping) -> dict[str, Any]:
    """The settings of ``task`` (evaluate, relax, neb, md, physics) checked, normalised and completed with defaults;
    ``ValueError`` naming the first problem. What the runner reads and what the CalcJob validates."""
    return _CHECKS[task](raw)
