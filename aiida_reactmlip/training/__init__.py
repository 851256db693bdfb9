"""Fine-tuning and training of MLIPs on labelled frames (pure: ASE Atoms in, a model file out; no aiida).

One entry point, :func:`finetune`, dispatches to the family modules (``chgnet``, ``sevenn``, ``mace``);
each family module defines ``DEFAULTS`` (its hyperparameters and their defaults),
``check_family_hyperparameters`` (its own rules) and
``finetune(base_model_file, train_images, valid_images, workdir, **hyperparameters) -> FinetuneResult``.
:func:`check_hyperparameters` is the one check of hyperparameters every caller uses (rules in
:mod:`.hyperparameters`).  CHGNet and SevenNet share their training loop (:mod:`.torch_loop`); MACE runs
``mace_run_train`` in a subprocess; :mod:`.common` holds the label checks and helpers they all use.
Frames carry their labels as ASE single-point results: energy (eV), forces (eV/Å), stress (eV/Å^3, optional).
"""

from __future__ import annotations

import importlib
import pathlib
from collections.abc import Mapping
from typing import Any

from .errors import FinetuneResult, TrainingDivergedError, TrainingError
from .hyperparameters import check_common_hyperparameters

__all__ = [
    "FINETUNE_FAMILIES",
    "FinetuneResult",
    "TrainingDivergedError",
    "TrainingError",
    "check_hyperparameters",
    "default_hyperparameters",
    "finetune",
]

#: families that can be fine-tuned, and the module that does it
FINETUNE_FAMILIES = {
    "chgnet": "aiida_reactmlip.training.chgnet",
    "sevenn": "aiida_reactmlip.training.sevenn",
    "mace": "aiida_reactmlip.training.mace",
}


def _finetune_family(family: str) -> str:
    """The normalised name of a family that can be fine-tuned; :class:`TrainingError` otherwise."""
    from aiida_reactmlip.models.loading import normalize_family

    try:
        family = normalize_family(family)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    if family not in FINETUNE_FAMILIES:
        raise TrainingError(
            f"model family {family!r} has no fine-tuning support; supported: {', '.join(FINETUNE_FAMILIES)}"
        )
    return family


def _family_module(family: str):
    return importlib.import_module(FINETUNE_FAMILIES[_finetune_family(family)])


def check_hyperparameters(family: str, hyperparameters: Mapping[str, Any], *, from_scratch: bool = False) -> None:
    """Raise :class:`TrainingError` (a ``ValueError``) for the first unknown or invalid hyperparameter of a
    ``family`` fine-tuning, naming the key, its value and what is allowed; ``hyperparameters`` need only
    hold what differs from the family's defaults.

    Unknown keys first, then the rules every family shares
    (:data:`aiida_reactmlip.training.hyperparameters.COMMON_RULES`), then the family's own
    ``check_family_hyperparameters`` hook.  ``from_scratch``: the model is trained without a base model
    (MACE only), which makes the architecture keys (``r_max``, ``num_channels``...) count and the
    base-model energy references unavailable.
    """
    name = _finetune_family(family)
    module = _family_module(name)
    unknown = sorted(set(hyperparameters) - set(module.DEFAULTS))
    if unknown:
        given = ", ".join(f"{key}={hyperparameters[key]!r}" for key in unknown)
        raise TrainingError(f"unknown {name} hyperparameter(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(module.DEFAULTS))} (given: {given})")
    hp = {**module.DEFAULTS, **hyperparameters}
    check_common_hyperparameters(hp)
    hook = getattr(module, "check_family_hyperparameters", None)
    if hook is not None:
        hook(hp, from_scratch=from_scratch)


def default_hyperparameters(family: str) -> dict[str, Any]:
    """The hyperparameters a family understands, with their defaults."""
    return dict(_family_module(family).DEFAULTS)


def finetune(family: str, base_model_file, train_images: list, valid_images: list, workdir, **hyperparameters) -> FinetuneResult:
    """Fine-tune ``base_model_file`` (``None``: train from scratch where the family allows) on ``train_images``.

    Unknown or invalid hyperparameters raise :class:`TrainingError` (see :func:`check_hyperparameters`).
    """
    module = _family_module(family)
    check_hyperparameters(family, hyperparameters, from_scratch=base_model_file is None)
    if not train_images:
        raise TrainingError("the training set is empty: fine-tuning needs at least one labelled frame")
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return module.finetune(base_model_file, list(train_images), list(valid_images or []), workdir,
                           **{**module.DEFAULTS, **hyperparameters})
