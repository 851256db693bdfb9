"""Fine-tuning and training of MLIPs on labelled frames (pure: ASE Atoms in, a model file out; no aiida).

One entry point, :func:`finetune`, dispatches to the family modules (``chgnet``, ``sevenn``, ``mace``);
each family module defines ``DEFAULTS`` (its hyperparameters and their defaults) and
``finetune(base_model_file, train_images, valid_images, workdir, **hyperparameters) -> FinetuneResult``.
Frames carry their labels as ASE single-point results: energy (eV), forces (eV/Å), stress (eV/Å^3, optional).
"""

from __future__ import annotations

import dataclasses
import importlib
import pathlib
from typing import Any

__all__ = ["FINETUNE_FAMILIES", "FinetuneResult", "TrainingDivergedError", "TrainingError", "default_hyperparameters", "finetune"]

#: families that can be fine-tuned, and the module that does it
FINETUNE_FAMILIES = {
    "chgnet": "aiida_reactmlip.training.chgnet",
    "sevenn": "aiida_reactmlip.training.sevenn",
    "mace": "aiida_reactmlip.training.mace",
}


class TrainingError(ValueError):
    """Bad training input (unknown hyperparameter, too few frames, unknown element...): says what to change."""


class TrainingDivergedError(TrainingError):
    """The loss became NaN or infinite: lower the learning rate or check the labels."""


@dataclasses.dataclass
class FinetuneResult:
    """What a fine-tuning produced.

    ``history``: one dict per epoch with at least ``epoch``, ``train_loss`` and, when validation frames
    were given, ``valid_energy_mae`` (eV/atom) and ``valid_force_mae`` (eV/Å).
    ``hyperparameters``: the effective values used, seed included.
    """

    model_file: pathlib.Path
    history: list[dict[str, float]]
    hyperparameters: dict[str, Any]
    seconds: float
    log_file: pathlib.Path | None = None


def _family_module(family: str):
    from aiida_reactmlip.models.loading import normalize_family

    try:
        family = normalize_family(family)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    if family not in FINETUNE_FAMILIES:
        raise TrainingError(
            f"model family {family!r} has no fine-tuning support; supported: {', '.join(FINETUNE_FAMILIES)}"
        )
    return importlib.import_module(FINETUNE_FAMILIES[family])


def default_hyperparameters(family: str) -> dict[str, Any]:
    """The hyperparameters a family understands, with their defaults."""
    return dict(_family_module(family).DEFAULTS)


def finetune(family: str, base_model_file, train_images: list, valid_images: list, workdir, **hyperparameters) -> FinetuneResult:
    """Fine-tune ``base_model_file`` (``None``: train from scratch where the family allows) on ``train_images``.

    Unknown hyperparameters raise :class:`TrainingError` naming the known ones.
    """
    module = _family_module(family)
    unknown = sorted(set(hyperparameters) - set(module.DEFAULTS))
    if unknown:
        raise TrainingError(
            f"unknown {family} hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(module.DEFAULTS))}"
        )
    if not train_images:
        raise TrainingError("the training set is empty: fine-tuning needs at least one labelled frame")
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return module.finetune(base_model_file, list(train_images), list(valid_images or []), workdir,
                           **{**module.DEFAULTS, **hyperparameters})
