"""The rules of fine-tuning hyperparameters (pure: no aiida, no torch).

:func:`aiida_reactmlip.training.check_hyperparameters` is what every caller uses (the CalcJob's input
validation, the studies and loops, the runner and the family modules themselves): it refuses unknown keys,
then checks the values every family shares (:data:`COMMON_RULES`, :func:`check_common_hyperparameters`),
then hands the merged mapping to the family's own hook ``check_family_hyperparameters(hp, *, from_scratch)``
in its module (``training/chgnet.py``...), which uses :func:`check_choice`, :func:`is_int`, :func:`is_number`.
Every refusal is a :class:`~aiida_reactmlip.training.TrainingError` (a ``ValueError``) whose message names
the key, the value given and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import TrainingError

__all__ = [
    "COMMON_RULES",
    "check_choice",
    "check_common_hyperparameters",
    "is_int",
    "is_number",
]


def is_int(value) -> bool:
    """True for an integer (numpy integers included), False for ``bool``."""
    import numpy as np

    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value) -> bool:
    """True for a finite int or float, False for ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: the hyperparameters every family shares: key -> (test of the value, what is allowed)
COMMON_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: is_int(v) and v >= 1, "a positive integer"),
    "batch_size": (lambda v: is_int(v) and v >= 1, "a positive integer"),
    "seed": (lambda v: is_int(v) and v >= 0, "a non-negative integer"),
    "num_threads": (lambda v: is_int(v) and v >= 0, "an integer >= 0 (0: torch's default)"),
    "learning_rate": (lambda v: is_number(v) and v > 0, "a positive number"),
    "energy_weight": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "force_weight": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "stress_weight": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "energy_reference": (lambda v: v in ("fit", "keep"), "'fit' or 'keep'"),
}


def check_choice(key: str, value, allowed: Sequence[str], *, lower: bool = False) -> None:
    """Refuse ``value`` of ``key`` unless it is one of ``allowed`` (compared lower-cased with ``lower``)."""
    if (str(value).lower() if lower else value) not in allowed:
        raise TrainingError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")


def check_common_hyperparameters(hp: Mapping[str, Any]) -> None:
    """Check the keys of :data:`COMMON_RULES` present in ``hp`` and that something is learnt."""
    for key, (valid, allowed) in COMMON_RULES.items():
        if key in hp and not valid(hp[key]):
            raise TrainingError(f"{key} must be {allowed}, got {hp[key]!r}")
    if hp.get("energy_weight", 1.0) + hp.get("force_weight", 1.0) <= 0:
        raise TrainingError(f"energy_weight ({hp['energy_weight']!r}) and force_weight ({hp['force_weight']!r}) "
                     "are both 0: nothing to learn; give one of them a value > 0")
