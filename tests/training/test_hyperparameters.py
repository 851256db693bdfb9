"""The one hyperparameter check (aiida_reactmlip.training.check_hyperparameters); pure, no training."""

from __future__ import annotations

import pytest

from aiida_reactmlip.training import TrainingError, check_hyperparameters, default_hyperparameters


@pytest.mark.parametrize("family", ["chgnet", "sevenn", "mace", "CHGNet"])
def test_defaults_and_empty_pass(family):
    check_hyperparameters(family, {})
    check_hyperparameters(family, default_hyperparameters(family))


@pytest.mark.parametrize(
    ("family", "given", "message"),
    [
        ("chgnet", {"epoch": 3}, r"unknown chgnet hyperparameter\(s\) epoch; known: .*given: epoch=3"),
        ("chgnet", {"epochs": 0}, "epochs must be a positive integer, got 0"),
        ("sevenn", {"batch_size": 2.5}, "batch_size must be a positive integer, got 2.5"),
        ("mace", {"seed": -1}, "seed must be a non-negative integer, got -1"),
        ("chgnet", {"learning_rate": True}, "learning_rate must be a positive number, got True"),
        ("sevenn", {"learning_rate": float("nan")}, "learning_rate must be a positive number, got nan"),
        ("chgnet", {"stress_weight": -1.0}, r"stress_weight must be a number >= 0, got -1.0"),
        ("chgnet", {"energy_weight": 0, "force_weight": 0.0}, "energy_weight .0. and force_weight .0.0. are both 0"),
        ("sevenn", {"energy_reference": "refit"}, "energy_reference must be 'fit' or 'keep', got 'refit'"),
        ("chgnet", {"optimizer": "adam"}, "optimizer must be one of Adam, AdamW, SGD, RAdam; got 'adam'"),
        ("chgnet", {"criterion": "L1"}, "criterion must be one of MSE, MAE, Huber; got 'L1'"),
        ("sevenn", {"scheduler": "CosLR"}, "scheduler must be one of exponentiallr, cosineannealinglr, none; got"),
        ("sevenn", {"loss": "mae"}, "loss must be one of mse, huber; got 'mae'"),
        ("sevenn", {"huber_delta": 0}, "huber_delta must be a positive number, got 0"),
        ("mace", {"valid_fraction": 1.0}, r"valid_fraction must be a number in \[0, 1\), got 1.0"),
        ("mace", {"E0s": "guess"}, "E0s must be one of auto, average, foundation, estimated"),
        ("nequip", {}, "unknown model family 'nequip'"),
    ],
)
def test_refusals_name_key_value_and_what_is_allowed(family, given, message):
    with pytest.raises(ValueError, match=message) as info:
        check_hyperparameters(family, given)
    assert isinstance(info.value, TrainingError)


def test_case_insensitive_sevenn_choices_and_from_scratch_rules():
    check_hyperparameters("sevenn", {"optimizer": "AdamW", "scheduler": "None", "loss": "Huber"})
    # the architecture keys count only from scratch; base-model energy references need a base model
    check_hyperparameters("mace", {"r_max": -1.0, "E0s": "foundation"})
    with pytest.raises(TrainingError, match=r"r_max must be a positive distance \(Å\), got -1.0"):
        check_hyperparameters("mace", {"r_max": -1.0}, from_scratch=True)
    with pytest.raises(TrainingError, match="max_L must be an integer 0..3, got 4"):
        check_hyperparameters("mace", {"max_L": 4}, from_scratch=True)
    with pytest.raises(TrainingError, match="E0s 'foundation' needs a base model"):
        check_hyperparameters("mace", {"E0s": "foundation"}, from_scratch=True)


@pytest.mark.mlip
def test_sevenn_choices_are_those_sevenn_knows():
    from aiida_reactmlip.models import allow_e3nn_constants
    from aiida_reactmlip.training import sevenn

    allow_e3nn_constants()
    from sevenn.train.optim import loss_dict, optim_dict, scheduler_dict

    assert set(sevenn.OPTIMIZERS) == set(optim_dict)
    assert set(sevenn.LOSSES) == set(loss_dict)
    assert set(sevenn.SCHEDULERS) - {"none"} <= set(scheduler_dict)
