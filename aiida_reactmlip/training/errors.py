"""What a fine-tuning returns and raises (pure; no aiida, no torch)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

__all__ = ["FinetuneResult", "TrainingDivergedError", "TrainingError"]


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
