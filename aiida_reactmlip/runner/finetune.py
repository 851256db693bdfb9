"""``reactmlip-runner finetune``: fine-tune an MLIP on labelled frames (never imports aiida).

Usage::

    reactmlip-runner finetune --input input.json

``input.json`` (relative paths are taken relative to the directory of ``input.json``)::

    {
      "family": "chgnet" | "sevenn" | "mace",
      "base_model_file": "base.pth.tar",       # null: train from scratch (MACE only)
      "model_name": "chgnet-0.3.0",             # optional: the base model's name, used in messages
      "train_file": "train.extxyz",             # frames with energy (eV) and forces (eV/A) labels
      "valid_file": "valid.extxyz",             # optional (null or absent: no validation frames)
      "output_model_file": "finetuned.pth.tar", # optional, default finetuned + the family's suffix
      "history_file": "history.json",
      "report_file": "report.json",
      "log_file": "training.log",               # the trainer's own log, copied when it writes one
      "workdir": "training",                    # scratch directory of the trainer
      "hyperparameters": {"epochs": 3, "learning_rate": 1e-4, "seed": 0}
    }

Outputs, beside ``input.json``:

- the fine-tuned model file (``output_model_file``), loadable by
  :func:`aiida_reactmlip.models.load_calculator` like any model of its family;
- ``history.json``: one record per epoch, ``epoch``, ``train_loss``, ``valid_energy_mae`` (eV/atom),
  ``valid_force_mae`` (eV/A), and whatever else the family's trainer reports;
- ``report.json``: the effective hyperparameters (seed included), seconds, frame and atom counts, the
  base model's sha256, and ``model_info`` of the new file (elements, cutoff in A, dtype, number of
  parameters, sha256), so that nothing downstream needs torch to describe the model.

Exit codes (:mod:`aiida_reactmlip.runner.contract`): 10 bad input, unknown hyperparameter or too few frames;
11 an element the base model does not cover; 12 the base model does not load; 13 the training itself
failed; 15 (:data:`~aiida_reactmlip.runner.contract.EXIT_DIVERGED`) the loss became NaN or infinite: the
history and report are written, the model file is not.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
import shutil
import sys
import time
import traceback
from typing import Any

from aiida_reactmlip.runner.contract import (
    EXIT_DIVERGED,
    EXIT_ELEMENTS,
    EXIT_EVALUATION,
    EXIT_INPUT,
    EXIT_MODEL_LOAD,
    FINETUNE_INPUT_DEFAULTS,
    FROM_SCRATCH_FAMILIES,
    RunnerError,
    finetuned_model_filename,
)
from aiida_reactmlip.runner.files import (
    check_keys,
    input_error,
    log,
    package_versions,
    read_json_object,
    require,
    resolve_path,
    write_json,
)

EXIT_DIVERGED_MESSAGE = "the training diverged: the loss became NaN or infinite"

#: Keys of ``model_info`` in the report (from :func:`aiida_reactmlip.models.describe_model_file`).
MODEL_INFO_KEYS = ("elements", "n_elements", "cutoff", "dtype", "n_parameters", "sha256", "size_bytes")


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples and paths turned into plain JSON types (NaN stays NaN)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if hasattr(value, "tolist"):  # numpy scalars and arrays, torch tensors
        return jsonable(value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def read_finetune_input(input_file: str | os.PathLike) -> dict[str, Any]:
    """The validated parameters of a ``finetune`` input file, defaults filled and paths resolved."""
    from aiida_reactmlip.training import FINETUNE_FAMILIES

    path = pathlib.Path(input_file)
    raw = read_json_object(path)
    invalid = input_error(path)
    check_keys(raw, ["family", "train_file", *FINETUNE_INPUT_DEFAULTS], invalid)
    params = {**FINETUNE_INPUT_DEFAULTS, **raw}
    require(params, ("family", "train_file"), invalid)
    if params["family"] not in FINETUNE_FAMILIES:
        raise invalid(f"model family {params['family']!r} has no fine-tuning support; "
                      f"supported: {', '.join(FINETUNE_FAMILIES)}")
    if params["base_model_file"] is None and params["family"] not in FROM_SCRATCH_FAMILIES:
        raise invalid(f"'base_model_file' is required: {params['family']} cannot train from scratch here "
                      f"(only {', '.join(FROM_SCRATCH_FAMILIES)} can)")
    if not isinstance(params["hyperparameters"], dict):
        raise invalid(f"'hyperparameters' must be a JSON object, got {params['hyperparameters']!r}")
    if params["output_model_file"] is None:
        params["output_model_file"] = finetuned_model_filename(params["family"])
    base = path.resolve().parent
    for key in ("base_model_file", "train_file", "valid_file", "output_model_file", "history_file",
                "report_file", "log_file", "workdir"):
        if params[key] is not None:
            params[key] = resolve_path(base, params[key])
    if params["model_name"] is None:
        params["model_name"] = params["base_model_file"].name if params["base_model_file"] else "(from scratch)"
    return params


def read_labelled_frames(path: pathlib.Path, what: str) -> list:
    """ASE Atoms with their energy (eV) and forces (eV/A) labels; ``RunnerError`` naming unlabelled frames."""
    from aiida_reactmlip.frames import read_extxyz

    if not path.is_file():
        raise RunnerError(EXIT_INPUT, f"{what} file {str(path)!r} does not exist")
    try:
        frames = read_extxyz(path)
    except (OSError, ValueError) as exc:
        raise RunnerError(EXIT_INPUT, f"{what} file {str(path)!r} is unreadable: {exc}") from exc
    unlabelled = [i for i in range(len(frames)) if not (frames.has_energy[i] and frames.has_forces[i])]
    if unlabelled:
        raise RunnerError(
            EXIT_INPUT,
            f"{what} frame(s) {unlabelled[:10]}{' ...' if len(unlabelled) > 10 else ''} of {str(path)!r} have no "
            f"energy or no forces label: fine-tuning needs both on every frame",
        )
    return frames.to_atoms()


def _symbols(images) -> list[str]:
    return sorted({symbol for atoms in images for symbol in atoms.get_chemical_symbols()})


def describe_or_fail(family: str, model_file: pathlib.Path, what: str, exit_code: int) -> dict[str, Any]:
    """:func:`describe_model_file` of ``model_file``, or ``RunnerError(exit_code)`` saying why it did not load."""
    from aiida_reactmlip.models import describe_model_file

    if not model_file.is_file():
        raise RunnerError(EXIT_INPUT, f"{what} {str(model_file)!r} does not exist")
    try:
        return describe_model_file(family, model_file)
    except Exception as exc:  # any loader failure, reported with its type
        traceback.print_exc(file=sys.stderr)
        raise RunnerError(exit_code, f"{what} {model_file.name} could not be loaded as a {family} model: "
                                     f"{type(exc).__name__}: {exc}") from exc


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def diverged_epochs(history: list[dict[str, Any]], with_validation: bool) -> list[int]:
    """Epoch numbers whose training loss (or, with validation frames, validation MAE) is NaN or infinite."""
    bad = []
    for k, record in enumerate(history):
        values = [record.get("train_loss")]
        if with_validation:
            values += [record.get("valid_energy_mae"), record.get("valid_force_mae")]
        if any(v is not None and not _finite(v) for v in values):
            bad.append(int(record.get("epoch", k + 1)))
    return bad


def is_divergence(exc: Exception) -> bool:
    """True for a trainer error that reports a NaN or infinite loss (rather than bad input)."""
    from aiida_reactmlip.training import TrainingDivergedError

    if isinstance(exc, TrainingDivergedError) or getattr(exc, "diverged", False):
        return True
    text = str(exc).lower()
    return "loss" in text and re.search(r"\b(nan|-?inf|infinity)\b", text) is not None


def run_finetune(input_file: str | os.PathLike) -> dict[str, Any]:
    """Fine-tune the model of ``input_file`` (see the module docstring); write the outputs; return the report.

    Raises :class:`RunnerError` with the exit code on failure (:data:`EXIT_DIVERGED` after writing the
    history and report when the loss became NaN or infinite).
    """
    from aiida_reactmlip.models import ElementNotCoveredError, check_elements
    from aiida_reactmlip.training import TrainingError, finetune

    wall_start = time.perf_counter()
    params = read_finetune_input(input_file)
    family = params["family"]
    train_images = read_labelled_frames(params["train_file"], "training")
    valid_images = read_labelled_frames(params["valid_file"], "validation") if params["valid_file"] else []
    if not train_images:
        raise RunnerError(EXIT_INPUT, "the training set is empty: fine-tuning needs at least one labelled frame")
    log(f"fine-tuning {params['model_name']} ({family}) on {len(train_images)} training and "
         f"{len(valid_images)} validation frame(s)")

    base_info = None
    if params["base_model_file"] is not None:
        base_info = describe_or_fail(family, params["base_model_file"], "base model file", EXIT_MODEL_LOAD)
        try:
            check_elements(params["model_name"], base_info["elements"], _symbols(train_images + valid_images))
        except ElementNotCoveredError as exc:
            raise RunnerError(EXIT_ELEMENTS, str(exc)) from exc

    hyperparameters = dict(params["hyperparameters"])
    start = time.perf_counter()
    try:
        result = finetune(family, params["base_model_file"], train_images, valid_images, params["workdir"],
                          **hyperparameters)
    except ElementNotCoveredError as exc:
        raise RunnerError(EXIT_ELEMENTS, str(exc)) from exc
    except TrainingError as exc:
        if is_divergence(exc):
            write_json(params["report_file"], {
                "task": "finetune", "family": family, "diverged": str(exc), "n_train": len(train_images),
                "n_valid": len(valid_images), "hyperparameters_requested": jsonable(hyperparameters),
                "wall_seconds": time.perf_counter() - wall_start,
            })
            raise RunnerError(EXIT_DIVERGED, f"{EXIT_DIVERGED_MESSAGE}: {exc}") from exc
        raise RunnerError(EXIT_INPUT, str(exc)) from exc
    except Exception as exc:  # the trainer's own failure, with its traceback
        traceback.print_exc(file=sys.stderr)
        raise RunnerError(EXIT_EVALUATION, f"fine-tuning failed: {type(exc).__name__}: {exc}") from exc
    train_seconds = time.perf_counter() - start

    history = jsonable(list(result.history))
    write_json(params["history_file"], {"history": history})
    if result.log_file is not None and pathlib.Path(result.log_file).is_file():
        shutil.copyfile(result.log_file, params["log_file"])
    effective = jsonable(result.hyperparameters)
    report: dict[str, Any] = {
        "task": "finetune",
        "family": family,
        "base_model_name": params["model_name"],
        "base_model_file": params["base_model_file"].name if params["base_model_file"] else None,
        "base_model_sha256": base_info["sha256"] if base_info else None,
        "from_scratch": params["base_model_file"] is None,
        "hyperparameters": effective,
        "hyperparameters_requested": jsonable(hyperparameters),
        "seed": effective.get("seed"),
        "n_train": len(train_images),
        "n_valid": len(valid_images),
        "n_train_atoms": int(sum(len(a) for a in train_images)),
        "n_valid_atoms": int(sum(len(a) for a in valid_images)),
        "train_elements": _symbols(train_images),
        "n_epochs": len(history),
        "final": history[-1] if history else {},
        "seconds": float(result.seconds),
        "train_call_seconds": train_seconds,
        "versions": package_versions(family),
    }
    bad = diverged_epochs(history, bool(valid_images))
    if bad:
        report["diverged_epochs"] = bad
        report["wall_seconds"] = time.perf_counter() - wall_start
        write_json(params["report_file"], report)
        raise RunnerError(EXIT_DIVERGED, f"{EXIT_DIVERGED_MESSAGE} at epoch(s) {bad}: lower learning_rate "
                                         f"(now {effective.get('learning_rate')}) or check the labels")

    output: pathlib.Path = params["output_model_file"]
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    shutil.copyfile(result.model_file, tmp)
    os.replace(tmp, output)
    info = describe_or_fail(family, output, "fine-tuned model file", EXIT_EVALUATION)
    report["model_file"] = output.name
    report["model_info"] = {key: info.get(key) for key in MODEL_INFO_KEYS}
    report["sha256"] = info["sha256"]
    report["wall_seconds"] = time.perf_counter() - wall_start
    write_json(params["report_file"], report)
    final = report["final"]
    log(f"done: {len(history)} epoch(s) in {result.seconds:.1f} s; final train loss {final.get('train_loss')}, "
         f"validation energy MAE {final.get('valid_energy_mae')} eV/atom, force MAE {final.get('valid_force_mae')} "
         f"eV/A; wrote {output.name} (sha256 {info['sha256'][:12]})")
    return report
