"""MACE: naive fine-tuning of a model file, or training from scratch, through ``mace_run_train`` (no aiida).

:func:`finetune` writes the frames as extended XYZ with MACE's own key names (``REF_energy``,
``REF_forces``, ``REF_stress``: nothing collides with calculator results), runs MACE's training script
in a subprocess (``python -m aiida_reactmlip.training.mace ARGS``: ``mace_run_train`` behind a guard
that refuses any network access) and returns the trained ``.model`` file, the pickled
``torch.nn.Module`` that :func:`aiida_reactmlip.models.loading.load_calculator` loads.

- Fine-tuning (``base_model_file`` given): ``--foundation_model FILE --multiheads_finetuning False``;
  the architecture and cutoff come from the base model, the ``r_max``/``num_channels``/... keys are
  then ignored.  With ``keep_all_elements`` (default) the new model keeps every element of the base
  model (``--foundation_model_elements True``), not only those of the training frames.
- From scratch (``base_model_file`` None): a ``model`` (``ScaleShiftMACE``) with ``r_max`` (Å),
  ``num_channels``, ``max_L``, ``num_interactions``, ``correlation``.

Energy reference (``E0s``, eV per isolated atom):

- ``"auto"``: ``"average"`` from scratch, ``"estimated"`` when fine-tuning.
- ``"average"``: least squares of the training energies on the atom counts (MACE's ``average``).
- ``"foundation"``: the base model's own E0s (right when the labels share the base model's
  reference, e.g. EMT labels for the EMT-trained fixture model).
- ``"estimated"``: the base model's E0s plus a least-squares per-element shift that removes the
  offset between the base model's energies and the labels on the training frames (minimum-norm
  solution; another DFT code or pseudopotentials shift every energy by a per-element constant).
- a dict ``{"H": -13.6, ...}`` (symbols or atomic numbers as keys).

When fine-tuning, elements of the base model that are not in the training frames keep the base
model's E0s.  Validation: ``valid_images`` when given; otherwise ``valid_fraction`` > 0 lets MACE
hold out that fraction of the training frames (seeded), and ``valid_fraction`` 0 (default) validates
on the training frames themselves (nothing is held out; the history's ``valid_*`` are then training
errors).  MACE keeps the weights of the epoch with the lowest validation loss, not the last epoch:
that epoch has ``selected`` 1.0 in the history.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import FinetuneResult, TrainingError, check_hyperparameters
from .common import check_model_elements, fit_elemental_shift, read_labels
from .hyperparameters import is_int, is_number

__all__ = ["DEFAULTS", "NETWORK_BLOCKED_MARKER", "base_model_info", "finetune", "write_training_xyz"]

#: hyperparameters and their defaults (units: learning_rate per step, r_max Å, E0s eV)
DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "learning_rate": 0.001,
    "batch_size": 5,  # clamped to the number of training frames (MACE drops the last incomplete batch)
    "seed": 0,
    "energy_weight": 1.0,
    "force_weight": 100.0,
    "stress_weight": 0.0,  # > 0: stress of 3D-periodic frames that carry one enters the loss
    "device": "cpu",
    # torch threads in the training process (0: the environment's OMP_NUM_THREADS / torch's default).
    # 1 by default: on a shared 2-core machine a MACE step took 0.3 s with 1 thread, 3.3 s with 2.
    "num_threads": 1,
    "E0s": "auto",
    "valid_fraction": 0.0,  # used only without valid_images; 0: validate on the training frames
    "keep_all_elements": True,  # fine-tuning: keep every element of the base model
    "default_dtype": "float64",
    # architecture, from scratch only
    "model": "ScaleShiftMACE",
    "r_max": 5.0,
    "num_channels": 32,
    "max_L": 1,
    "max_ell": 3,
    "num_interactions": 2,
    "correlation": 3,
    "num_radial_basis": 8,
}

#: what the guard in the training subprocess prints when something tries to reach the network
NETWORK_BLOCKED_MARKER = "REACTMLIP-NETWORK-BLOCKED"

_NAME = "mace"
_ENERGY_KEY, _FORCES_KEY, _STRESS_KEY = "REF_energy", "REF_forces", "REF_stress"
_E0S_MODES = ("auto", "average", "foundation", "estimated")


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------


def check_family_hyperparameters(hp: Mapping[str, Any], *, from_scratch: bool = False) -> None:
    """MACE's own rules (hook of :func:`aiida_reactmlip.training.check_hyperparameters`); the architecture
    keys count only ``from_scratch``."""
    vf = hp["valid_fraction"]
    if not is_number(vf) or not 0.0 <= vf < 1.0:
        raise TrainingError(f"valid_fraction must be a number in [0, 1), got {vf!r}")
    if hp["default_dtype"] not in ("float32", "float64"):
        raise TrainingError(f"default_dtype must be 'float32' or 'float64', got {hp['default_dtype']!r}")
    e0s = hp["E0s"]
    if isinstance(e0s, str):
        if e0s not in _E0S_MODES:
            raise TrainingError(f"E0s must be one of {', '.join(_E0S_MODES)} or a dict element -> eV, got {e0s!r}")
        if from_scratch and e0s in ("foundation", "estimated"):
            raise TrainingError(f"E0s {e0s!r} needs a base model; from scratch use 'average' or a dict element -> eV")
    elif not isinstance(e0s, Mapping):
        raise TrainingError(f"E0s must be a string or a dict element -> eV, got {type(e0s).__name__} {e0s!r}")
    if from_scratch:
        if not is_number(hp["r_max"]) or not hp["r_max"] > 0:
            raise TrainingError(f"r_max must be a positive distance (Å), got {hp['r_max']!r}")
        for key in ("num_channels", "num_interactions", "correlation", "num_radial_basis"):
            if not is_int(hp[key]) or hp[key] < 1:
                raise TrainingError(f"{key} must be a positive integer, got {hp[key]!r}")
        for key in ("max_L", "max_ell"):
            if not is_int(hp[key]) or not 0 <= hp[key] <= 3:
                raise TrainingError(f"{key} must be an integer 0..3, got {hp[key]!r}")


def _e0s_dict(e0s: Mapping) -> dict[int, float]:
    from ase.data import atomic_numbers

    out = {}
    for key, value in e0s.items():
        try:
            z = int(key) if str(key).isdigit() else atomic_numbers[str(key)]
        except KeyError as exc:
            raise TrainingError(f"E0s: {key!r} is not an element symbol or atomic number") from exc
        try:
            out[z] = float(value)
        except (TypeError, ValueError) as exc:
            raise TrainingError(f"E0s: the energy of {key!r} must be a number (eV), got {value!r}") from exc
        if not math.isfinite(out[z]):
            raise TrainingError(f"E0s: the energy of {key!r} is not finite ({value!r})")
    return out


def base_model_info(base_model_file) -> dict[str, Any]:
    """Elements, atomic numbers, cutoff (Å), dtype and E0s (eV, atomic number -> energy) of a MACE model file.

    Raises :class:`TrainingError` when the file does not exist or is not a pickled MACE model.
    """
    from aiida_reactmlip.models.errors import ModelError
    from aiida_reactmlip.models.loading import _load_model, _resolve, describe_model_file

    try:
        info = describe_model_file("mace", base_model_file)
        model, _ = _load_model("mace", _resolve(base_model_file))
    except ModelError as exc:
        raise TrainingError(f"base model {base_model_file}: {exc}") from exc
    numbers = [int(z) for z in model.atomic_numbers]
    energies = model.atomic_energies_fn.atomic_energies.detach().cpu().numpy()
    energies = energies.reshape(-1, len(numbers))[0]  # first head of a multi-head model
    info["atomic_numbers"] = numbers
    info["E0s"] = {z: float(e) for z, e in zip(numbers, energies, strict=True)}
    return info


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


def write_training_xyz(images: Sequence, labels: Sequence, path, *, with_stress: bool) -> pathlib.Path:
    """Write labelled frames as extxyz with MACE's key names (``REF_energy`` eV, ``REF_forces`` eV/Å,
    ``REF_stress`` eV/Å^3 Voigt, only for 3D-periodic frames and when ``with_stress``).

    Frames that are not 3D periodic are boxed as :func:`aiida_reactmlip.models.loading.ensure_cell`
    does (molecules centred in a cube with 10 Å vacuum, slabs keep their cell): with vacuum above the
    cutoff, periodic images do not interact.  Only positions, numbers, cell, pbc and labels are written.
    """
    import ase.io
    from ase import Atoms

    from aiida_reactmlip.models.loading import ensure_cell, is_periodic_3d

    frames = []
    for atoms, label in zip(images, labels, strict=True):
        periodic = is_periodic_3d(atoms)
        boxed = ensure_cell(atoms)
        frame = Atoms(numbers=boxed.numbers, positions=boxed.positions, cell=boxed.cell, pbc=boxed.pbc)
        frame.info[_ENERGY_KEY] = float(label.energy)
        frame.arrays[_FORCES_KEY] = np.asarray(label.forces, dtype=float)
        if with_stress and periodic and label.stress is not None:
            frame.info[_STRESS_KEY] = np.asarray(label.stress, dtype=float)
        frames.append(frame)
    path = pathlib.Path(path)
    ase.io.write(path, frames, format="extxyz")
    return path


def _average_e0s(labels: Sequence) -> dict[int, float]:
    """MACE's ``average`` E0s: least squares (minimum norm) of total energies on atom counts (eV/atom)."""
    return fit_elemental_shift([lab.numbers for lab in labels], [lab.energy for lab in labels])


def _estimated_e0s(base_model_file, base_e0s: Mapping[int, float], images: Sequence, labels: Sequence,
                   dtype: str) -> dict[int, float]:
    """Base E0s shifted so that the base model's energies on the training frames best match the labels."""
    from aiida_reactmlip.models.loading import ensure_cell, load_calculator

    from .common import predict_energies

    calc = load_calculator("mace", base_model_file, dtype=dtype)
    predicted = predict_energies(calc, [ensure_cell(a) for a in images])
    residuals = [lab.energy - e for lab, e in zip(labels, predicted, strict=True)]
    shift = fit_elemental_shift([lab.numbers for lab in labels], residuals)
    return {z: float(base_e0s[z] + shift.get(z, 0.0)) for z in base_e0s}


def _resolve_e0s(hp, base_model_file, base, images, labels) -> tuple[str | dict[int, float], str]:
    """The E0s argument for mace_run_train (``"average"`` or a dict Z -> eV) and the mode used."""
    e0s = hp["E0s"]
    if isinstance(e0s, Mapping):
        given = _e0s_dict(e0s)
        train_z = sorted({int(z) for lab in labels for z in lab.numbers})
        missing = [z for z in train_z if z not in given]
        if missing:
            from ase.data import chemical_symbols

            raise TrainingError(
                "E0s: no energy given for element(s) "
                f"{', '.join(chemical_symbols[z] for z in missing)} of the training frames"
            )
        if base is not None:
            return {**base["E0s"], **given}, "dict"
        return given, "dict"
    mode = e0s if e0s != "auto" else ("average" if base is None else "estimated")
    if base is None:
        return "average", mode
    if mode == "foundation":
        return dict(base["E0s"]), mode
    if mode == "average":
        return {**base["E0s"], **_average_e0s(labels)}, mode
    return _estimated_e0s(base_model_file, base["E0s"], images, labels, hp["default_dtype"]), mode


# ---------------------------------------------------------------------------------------------
# running mace_run_train
# ---------------------------------------------------------------------------------------------


def _command(hp, *, base_model_file, train_xyz, valid_xyz, e0s_arg, batch_size, valid_batch_size,
             with_stress) -> list[str]:
    args = [
        "--name", _NAME,
        "--seed", str(hp["seed"]),
        "--device", str(hp["device"]),
        "--default_dtype", str(hp["default_dtype"]),
        "--train_file", str(train_xyz),
        "--energy_key", _ENERGY_KEY,
        "--forces_key", _FORCES_KEY,
        "--stress_key", _STRESS_KEY,
        "--E0s", str(e0s_arg),
        "--max_num_epochs", str(hp["epochs"]),
        "--lr", repr(float(hp["learning_rate"])),
        "--batch_size", str(batch_size),
        "--valid_batch_size", str(valid_batch_size),
        "--energy_weight", repr(float(hp["energy_weight"])),
        "--forces_weight", repr(float(hp["force_weight"])),
        "--stress_weight", repr(float(hp["stress_weight"])),
        "--eval_interval", "1",
        "--error_table", "PerAtomMAE",
        "--plot", "False",
        "--pin_memory", "False",
        "--save_cpu",
        "--work_dir", ".",
    ]
    if with_stress:
        args += ["--loss", "stress", "--compute_stress", "True"]
    if valid_xyz is not None:
        args += ["--valid_file", str(valid_xyz)]
    else:
        args += ["--valid_fraction", repr(float(hp["valid_fraction"]))]
    if base_model_file is not None:
        args += [
            "--foundation_model", str(base_model_file),
            "--multiheads_finetuning", "False",
            "--foundation_model_elements", "True" if hp["keep_all_elements"] else "False",
        ]
    else:
        args += [
            "--model", str(hp["model"]),
            "--r_max", repr(float(hp["r_max"])),
            "--num_channels", str(hp["num_channels"]),
            "--max_L", str(hp["max_L"]),
            "--max_ell", str(hp["max_ell"]),
            "--num_interactions", str(hp["num_interactions"]),
            "--correlation", str(hp["correlation"]),
            "--num_radial_basis", str(hp["num_radial_basis"]),
        ]
    return args


def _environment(num_threads: int) -> dict[str, str]:
    env = dict(os.environ)
    if num_threads:
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[key] = str(num_threads)
    # mace_run_train loads the foundation model with a bare torch.load (torch >= 2.6 then refuses pickled
    # modules): allowed in this subprocess only, which loads nothing but the files given here
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    env["PYTHONHASHSEED"] = "0"  # set iteration order inside pickled e3nn objects: reproducible files
    env["WANDB_MODE"] = "disabled"
    # the package root on the path, so that ``-m aiida_reactmlip.training.mace`` works from any cwd
    root = str(pathlib.Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    return env


def _read_results(results_file: pathlib.Path) -> tuple[list[dict[str, float]], dict[str, float] | None]:
    """Per-epoch history (epoch 1..N) and the evaluation before training from MACE's results file.

    MACE's ``results/*_train.txt`` holds one JSON line per optimiser step (``mode`` "opt", ``loss``) and
    per evaluation (``mode`` "eval", errors in eV, eV/atom and eV/Å; its text log shows the same numbers
    in meV).  MACE counts epochs from 0; here epoch k is the state after k epochs of training.
    """
    steps: dict[int, list[float]] = {}
    evals: dict[int, dict] = {}
    initial = None
    for line in results_file.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        if entry.get("mode") == "opt":
            steps.setdefault(int(entry["epoch"]), []).append(float(entry["loss"]))
        elif entry.get("mode") == "eval":
            if entry.get("epoch") is None:
                initial = entry
            else:
                evals[int(entry["epoch"])] = entry
    history = []
    for epoch in sorted(set(steps) | set(evals)):
        ev = evals.get(epoch, {})
        history.append({
            "epoch": float(epoch + 1),
            "train_loss": float(np.mean(steps[epoch])) if epoch in steps else math.nan,
            "valid_loss": float(ev.get("loss", math.nan)),
            "valid_energy_mae": float(ev.get("mae_e_per_atom", math.nan)),
            "valid_force_mae": float(ev.get("mae_f", math.nan)),
            "valid_energy_rmse": float(ev.get("rmse_e_per_atom", math.nan)),
            "valid_force_rmse": float(ev.get("rmse_f", math.nan)),
        })
    before = None
    if initial is not None:
        before = {
            "valid_loss": float(initial.get("loss", math.nan)),
            "valid_energy_mae": float(initial.get("mae_e_per_atom", math.nan)),
            "valid_force_mae": float(initial.get("mae_f", math.nan)),
        }
    return history, before


def _selected_epoch(log_text: str) -> int | None:
    import re

    found = re.findall(r"Loaded Stage one model from epoch (\d+)", log_text)
    return int(found[-1]) + 1 if found else None


def _tail(text: str, n: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def finetune(base_model_file, train_images: list, valid_images: list, workdir, **hp) -> FinetuneResult:
    """Fine-tune the MACE model in ``base_model_file`` on ``train_images`` (``None``: train from scratch).

    ``train_images``/``valid_images``: ASE Atoms with energy (eV) and forces (eV/Å) labels as calculator
    results.  Writes ``train.xyz``/``valid.xyz``, MACE's ``logs/``, ``results/``, ``checkpoints/`` and the
    trained ``mace.model`` in ``workdir``, the console output in ``mace_run_train.log`` and the history
    (with the evaluation before training) in ``history.json``.  Every input check (labels, elements the
    base model does not know, hyperparameters) raises :class:`TrainingError` before MACE starts.
    """
    from_scratch = base_model_file is None
    check_hyperparameters("mace", hp, from_scratch=from_scratch)
    hp = {**DEFAULTS, **hp}
    workdir = pathlib.Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    train_labels = read_labels(train_images, "training")
    valid_labels = read_labels(valid_images, "validation") if valid_images else []

    base = None
    if not from_scratch:
        base_model_file = pathlib.Path(base_model_file).expanduser().resolve()
        base = base_model_info(base_model_file)
        check_model_elements(
            base_model_file.name, base["elements"],
            {"training": train_images, **({"validation": valid_images} if valid_images else {})},
        )
    elif valid_images:
        train_elements = {s for a in train_images for s in a.get_chemical_symbols()}
        extra = sorted({s for a in valid_images for s in a.get_chemical_symbols()} - train_elements)
        if extra:
            raise TrainingError(
                f"the validation frames hold element(s) {', '.join(extra)} that no training frame has: "
                "a model trained from scratch cannot learn them"
            )

    n_train = len(train_images)
    n_holdout = 0
    if not valid_images and hp["valid_fraction"] > 0:
        n_holdout = max(1, int(hp["valid_fraction"] * n_train))
        if n_train - n_holdout < 1:
            raise TrainingError(
                f"valid_fraction {hp['valid_fraction']} of {n_train} training frame(s) leaves none to train on; "
                "give validation frames or set valid_fraction 0"
            )
    batch_size = min(int(hp["batch_size"]), n_train - n_holdout)
    with_stress = hp["stress_weight"] > 0 and any(
        lab.stress is not None for lab in train_labels
    )

    e0s, e0s_mode = _resolve_e0s(hp, base_model_file, base, train_images, train_labels)
    if isinstance(e0s, dict):
        e0s_file = workdir / "E0s.json"
        e0s_file.write_text(json.dumps({str(z): e for z, e in sorted(e0s.items())}, indent=1) + "\n")
        e0s_arg = str(e0s_file)
    else:
        e0s_arg = e0s

    train_xyz = write_training_xyz(train_images, train_labels, workdir / "train.xyz", with_stress=with_stress)
    if valid_images:
        valid_xyz = write_training_xyz(valid_images, valid_labels, workdir / "valid.xyz", with_stress=with_stress)
        n_valid = len(valid_images)
    elif hp["valid_fraction"] > 0:
        valid_xyz, n_valid = None, n_holdout
    else:  # validate on the training frames themselves
        valid_xyz = shutil.copyfile(train_xyz, workdir / "valid.xyz")
        n_valid = n_train

    for stale in ("results", "checkpoints", "logs", f"{_NAME}.model"):
        target = workdir / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

    args = _command(
        hp, base_model_file=base_model_file, train_xyz=train_xyz.name,
        valid_xyz=None if valid_xyz is None else pathlib.Path(valid_xyz).name, e0s_arg=e0s_arg,
        batch_size=batch_size, valid_batch_size=max(1, min(10, n_valid)), with_stress=with_stress,
    )
    log_file = workdir / "mace_run_train.log"
    start = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "aiida_reactmlip.training.mace", *args],
            cwd=workdir, env=_environment(int(hp["num_threads"])), stdout=log, stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.perf_counter() - start
    log_text = log_file.read_text(encoding="utf-8", errors="replace")
    if NETWORK_BLOCKED_MARKER in log_text:
        line = next(x for x in log_text.splitlines() if NETWORK_BLOCKED_MARKER in x)
        raise TrainingError(
            f"mace_run_train tried to reach the network ({line.split(NETWORK_BLOCKED_MARKER)[-1].strip(': ')}); "
            "nothing is downloaded here: give the base model as a local file and no replay/pretraining data. "
            f"Log: {log_file}"
        )
    model_file = workdir / f"{_NAME}.model"
    if proc.returncode != 0 or not model_file.is_file():
        raise TrainingError(
            f"mace_run_train failed (exit code {proc.returncode}) in {workdir}; end of {log_file.name}:\n"
            f"{_tail(log_text)}"
        )

    results = sorted((workdir / "results").glob("*_train.txt"))
    history, before = _read_results(results[0]) if results else ([], None)
    selected = _selected_epoch(log_text)
    for entry in history:
        entry["selected"] = 1.0 if selected is not None and int(entry["epoch"]) == selected else 0.0
    (workdir / "history.json").write_text(json.dumps(
        {"before_training": before, "selected_epoch": selected, "history": history}, indent=1) + "\n")

    effective = {
        **hp,
        "batch_size": batch_size,
        "E0s": {str(z): e for z, e in sorted(e0s.items())} if isinstance(e0s, dict) else e0s,
        "E0s_mode": e0s_mode,
        "n_train": n_train - n_holdout,
        "n_valid": n_valid,
        "validation": "frames" if valid_images else ("holdout" if n_holdout else "training frames"),
        "from_scratch": from_scratch,
    }
    if not from_scratch:
        effective["r_max"] = base["cutoff"]
        for key in ("num_channels", "max_L", "max_ell", "num_interactions", "correlation", "num_radial_basis",
                    "model"):
            effective.pop(key, None)
    return FinetuneResult(model_file=model_file, history=history, hyperparameters=effective,
                          seconds=seconds, log_file=log_file)


# ---------------------------------------------------------------------------------------------
# the training subprocess: ``python -m aiida_reactmlip.training.mace <mace_run_train arguments>``
# ---------------------------------------------------------------------------------------------


def _block_network() -> None:
    """Make any attempt to open a non-local connection fail at once with :data:`NETWORK_BLOCKED_MARKER`."""
    import socket

    local = {"localhost", "127.0.0.1", "::1", "", None}
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def refuse(what) -> None:
        message = f"{NETWORK_BLOCKED_MARKER}: attempted network access to {what}"
        print(message, file=sys.stderr, flush=True)
        raise OSError(message)

    def getaddrinfo(host, *args, **kwargs):
        if host not in local:
            refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in local:
            refuse(host)
        return real_connect(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect


def _skip_final_extras(run_train) -> None:
    """Skip the TorchScript copy (not loaded by this package) and the final train/valid error table
    (the per-epoch validation errors are in the results file): about 20 s of a 2-minute run on a shared 2-core machine."""
    import types

    def no_compile(*_args, **_kwargs):
        raise RuntimeError("compilation skipped by aiida-reactmlip")

    run_train.jit = types.SimpleNamespace(compile=no_compile)
    run_train.create_error_table = lambda **_kwargs: "(skipped by aiida-reactmlip)"


def _main(argv: list[str]) -> int:
    _block_network()
    from aiida_reactmlip.models._torch_compat import allow_e3nn_constants

    allow_e3nn_constants()
    from mace.cli import run_train

    _skip_final_extras(run_train)
    sys.argv = ["mace_run_train", *argv]
    run_train.main()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
