"""Fine-tune a SevenNet checkpoint (SevenNet-0 by default) on labelled frames (pure; no aiida).

Uses sevenn 0.10.4's own machinery: ``sevenn.util.model_from_checkpoint`` (as the evaluation loads it),
graphs from ``sevenn.train.dataload.atoms_to_graph``, batching by ``torch_geometric``'s DataLoader,
``sevenn.train.trainer.Trainer`` (model set-up, optimizer, scheduler) with sevenn's loss definitions
(energy per atom in eV/atom, forces in eV/Å, stress in kbar), and ``Trainer.write_checkpoint``'s format
for the output.  The epoch loop is ours so that the training loss and our own validation errors are
recorded each epoch.

Frames are used as they are (non-periodic directions stay non-periodic): that is how the SevenNet
calculator evaluates them too.
"""

from __future__ import annotations

import math
import pathlib
import time
from typing import Any

import numpy as np

from . import FinetuneResult, TrainingDivergedError, TrainingError
from .common import (
    TrainingLog,
    apply_freeze,
    check_common_hyperparameters,
    check_model_elements,
    composition_counts,
    fit_elemental_shift,
    is_periodic_3d,
    predict_energies,
    read_labels,
    save_torch_deterministic,
    seed_everything,
    sha256_file,
    torch_threads,
    validation_errors,
)

__all__ = ["DEFAULTS", "FREEZE_PRESETS", "MODEL_FILE_NAME", "finetune"]

#: hyperparameters of a SevenNet fine-tuning and their defaults
DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "learning_rate": 1e-3,
    "batch_size": 4,
    "seed": 0,
    "energy_weight": 1.0,
    "force_weight": 1.0,
    # stress (kbar) is only trained when > 0 AND every training frame is 3D-periodic with a stress label
    "stress_weight": 0.0,
    "freeze": "none",  # "none" | "graph" (only the readout trains) | list of parameter-name prefixes
    "optimizer": "adam",  # adam | adamw | sgd | radam | adagrad (sevenn.train.optim)
    "scheduler": "exponentiallr",  # exponentiallr (gamma 0.99 / epoch) | cosineannealinglr | none
    "loss": "mse",  # mse | huber (sevenn.train.optim.loss_dict)
    "huber_delta": 0.01,  # used with loss "huber" (SevenNet-0's own value)
    "energy_reference": "fit",  # "fit": refit the per-species energy shifts to the labels first; "keep"
    "device": "cpu",
    "num_threads": 0,  # 0: leave torch's thread count as it is
}

#: ``freeze`` presets: parameter-name prefixes frozen by each
FREEZE_PRESETS: dict[str, list[str]] = {
    # embedding and every interaction block: only the readout (reduce_input_to_hidden,
    # reduce_hidden_to_energy) trains
    "graph": ["edge_embedding", "onehot_to_feature_x"] + [
        f"{i}_{part}"
        for i in range(10)
        for part in ("self_connection_intro", "self_interaction_1", "convolution", "self_interaction_2")
    ],
}

MODEL_FILE_NAME = "sevennet_finetuned.pth"
LOG_FILE_NAME = "finetune_sevenn.log"

_SCHEDULERS = ("exponentiallr", "cosineannealinglr", "none")


def _check_hyperparameters(hp: dict) -> None:
    from aiida_reactmlip.models._torch_compat import allow_e3nn_constants

    check_common_hyperparameters(hp)
    allow_e3nn_constants()
    from sevenn.train.optim import loss_dict, optim_dict

    if str(hp["optimizer"]).lower() not in optim_dict:
        raise TrainingError(f"optimizer must be one of {', '.join(optim_dict)}; got {hp['optimizer']!r}")
    if str(hp["scheduler"]).lower() not in _SCHEDULERS:
        raise TrainingError(f"scheduler must be one of {', '.join(_SCHEDULERS)}; got {hp['scheduler']!r}")
    if str(hp["loss"]).lower() not in loss_dict:
        raise TrainingError(f"loss must be one of {', '.join(loss_dict)}; got {hp['loss']!r}")
    delta = hp["huber_delta"]
    if not isinstance(delta, (int, float)) or isinstance(delta, bool) or not (math.isfinite(delta) and delta > 0):
        raise TrainingError(f"huber_delta must be a positive number, got {delta!r}")


def _load_base(base_model_file):
    """A fresh SevenNet model object (ours to modify), its config and what its file covers."""
    from aiida_reactmlip.models import loading

    if base_model_file is None:
        raise TrainingError("SevenNet fine-tuning needs a base checkpoint (training from scratch is MACE-only)")
    path = pathlib.Path(base_model_file)
    try:
        info = loading.describe_model_file("sevenn", path)  # leaves the built model for _load_model
        model, config = loading._load_model("sevenn", loading._resolve(path))
    except Exception as exc:
        raise TrainingError(f"cannot load the base SevenNet checkpoint {path}: {exc}") from exc
    return model, config, info


def _calculator(model, device: str):
    from sevenn.calculator import SevenNetCalculator

    return SevenNetCalculator(model=model, file_type="model_instance", device=device)


def _graph(atoms, label, cutoff: float, use_stress: bool):
    """sevenn's training graph of one frame with our labels (eV, eV/Å, eV/Å^3 in sevenn's stress order)."""
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.train.dataload import atoms_to_graph

    frame = atoms.copy()
    frame.calc = None
    frame.info = {"y_energy": float(label.energy)}
    frame.arrays["y_force"] = np.array(label.forces, dtype=float)
    if use_stress:
        # sevenn keeps -σ in the order xx, yy, zz, xy, yz, zx (its calculator undoes exactly this)
        frame.info["y_stress"] = -np.asarray(label.stress)[[0, 1, 2, 5, 3, 4]]
    else:
        frame.info["y_stress"] = np.full(6, np.nan)
    return AtomGraphData.from_numpy_dict(atoms_to_graph(frame, cutoff, transfer_info=False, y_from_calc=False))


def _shift_species(model, config, numbers_per_frame, residuals, log) -> dict[str, float]:
    """Move SevenNet's per-species energy shifts onto the labels' energy reference (eV/atom)."""
    import torch
    from ase.data import chemical_symbols

    rescale = model._modules.get("rescale_atomic_energy")
    if rescale is None or not hasattr(rescale, "shift"):
        log.write("energy reference not refitted: this model has no rescale_atomic_energy shift")
        return {}
    type_map = config["_type_map"]
    with torch.no_grad():
        if rescale.shift.numel() == 1:  # one shift for all species
            counts, _ = composition_counts(numbers_per_frame)
            n = counts.sum(axis=1)
            delta = float(np.dot(n, residuals) / np.dot(n, n))
            rescale.shift += delta
            shift = {"all": delta}
        else:
            per_z = fit_elemental_shift(numbers_per_frame, residuals)
            for z, delta in per_z.items():
                rescale.shift[type_map[z]] += delta
            shift = {chemical_symbols[z]: d for z, d in per_z.items()}
    config["shift"] = rescale.shift.detach().cpu().numpy().copy()
    return shift


def finetune(base_model_file, train_images, valid_images, workdir, **hp) -> FinetuneResult:
    """Fine-tune the SevenNet checkpoint ``base_model_file`` on ``train_images``; see :data:`DEFAULTS`.

    ``train_images`` / ``valid_images``: ASE Atoms with energy (eV) and forces (eV/Å) labels (stress
    eV/Å^3 optional).  ``valid_images`` may be empty: the history then holds only ``epoch``,
    ``train_loss`` and ``learning_rate``.  Returns a :class:`FinetuneResult` whose ``model_file`` is a
    sevenn checkpoint (``model_state_dict``, ``config``, ``optimizer_state_dict``, ...) that
    ``load_calculator("sevenn", file)`` and ``SevenNetCalculator(file)`` load.

    History per epoch: ``train_loss`` (sevenn's weighted loss averaged over the epoch's batches: energy per
    atom in eV/atom, forces eV/Å, stress kbar; MSE or Huber), ``learning_rate`` during the epoch, and,
    with validation frames, ``valid_energy_mae`` (eV/atom, raw energies) and ``valid_force_mae`` (eV/Å)
    computed by us with the SevenNet ASE calculator after the epoch.
    """
    hp = {**DEFAULTS, **hp}
    unknown = sorted(set(hp) - set(DEFAULTS))
    if unknown:
        raise TrainingError(f"unknown sevenn hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(DEFAULTS))}")
    _check_hyperparameters(hp)
    train_images, valid_images = list(train_images), list(valid_images or [])
    if not train_images:
        raise TrainingError("the training set is empty: fine-tuning needs at least one labelled frame")
    train_labels = read_labels(train_images, "training")
    valid_labels = read_labels(valid_images, "validation")

    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with TrainingLog(workdir / LOG_FILE_NAME) as log, torch_threads(hp["num_threads"]):
        with log.capture():
            model, config, info = _load_base(base_model_file)
        check_model_elements(
            f"{pathlib.Path(base_model_file).name} (sevenn)", info["elements"],
            {"training": train_images, "validation": valid_images},
        )
        with log.capture():
            history, extra, trainer = _train(model, config, info, train_images, train_labels,
                                             valid_images, valid_labels, hp, log)
        model_file = workdir / MODEL_FILE_NAME
        model.to("cpu")
        checkpoint = trainer.get_checkpoint_dict()
        checkpoint.update(
            config=config,
            epoch=hp["epochs"],
            reactmlip_finetune={
                "base_model_sha256": info["sha256"],
                "hyperparameters": dict(hp),
                "n_train": len(train_images),
                "n_valid": len(valid_images),
                **extra,
            },
        )
        save_torch_deterministic(checkpoint, model_file)
        _check_round_trip(model, model_file, (valid_images or train_images)[:2], log)
        seconds = time.perf_counter() - start
        log.write(f"saved {model_file.name} sha256 {sha256_file(model_file)} after {seconds:.1f} s")
    return FinetuneResult(model_file, history, {**hp, **extra}, seconds, workdir / LOG_FILE_NAME)


def _train(model, config, info, train_images, train_labels, valid_images, valid_labels, hp, log):
    import torch
    from sevenn.train.loss import ForceLoss, PerAtomEnergyLoss, StressLoss
    from sevenn.train.optim import loss_dict, optim_dict, scheduler_dict
    from sevenn.train.trainer import Trainer
    from torch_geometric.loader import DataLoader

    seed_everything(hp["seed"])
    device = hp["device"]
    cutoff = float(config["cutoff"])
    log.write(f"base SevenNet {info['sha256'][:12]}: {info['n_parameters']} parameters, cutoff {cutoff} Å")
    log.write(f"hyperparameters: {hp}")

    calc = _calculator(model, device)
    extra: dict[str, Any] = {}
    if hp["energy_reference"] == "fit":
        residual = np.array([lab.energy for lab in train_labels]) - predict_energies(calc, train_images)
        shift = _shift_species(model, config, [lab.numbers for lab in train_labels], residual, log)
        extra["elemental_shift_eV_per_atom"] = shift
        log.write(f"energy reference refitted: per-species shifts (eV/atom) {shift}; mean |residual| before "
                  f"{np.mean(np.abs(residual) / [lab.n_atoms for lab in train_labels]):.4f} eV/atom")
    frozen = apply_freeze(model, hp["freeze"], FREEZE_PRESETS)
    if frozen:
        log.write(f"frozen {len(frozen)} parameter tensors ({hp['freeze']})")

    use_stress = hp["stress_weight"] > 0 and all(
        is_periodic_3d(a) and lab.stress is not None for a, lab in zip(train_images, train_labels, strict=True)
    )
    if hp["stress_weight"] > 0 and not use_stress:
        log.write("stress not trained: not every training frame is 3D-periodic with a stress label")
    extra["targets"] = "efs" if use_stress else "ef"
    graphs = [_graph(a, lab, cutoff, use_stress) for a, lab in zip(train_images, train_labels, strict=True)]
    generator = torch.Generator().manual_seed(hp["seed"])
    loader = DataLoader(graphs, batch_size=hp["batch_size"], shuffle=True, generator=generator)

    loss_name = str(hp["loss"]).lower()
    criterion = loss_dict[loss_name](**({"delta": hp["huber_delta"]} if loss_name == "huber" else {}))
    loss_functions = [(PerAtomEnergyLoss(criterion=criterion), hp["energy_weight"]),
                      (ForceLoss(criterion=criterion), hp["force_weight"])]
    if use_stress:
        loss_functions.append((StressLoss(criterion=criterion), hp["stress_weight"]))
    scheduler = str(hp["scheduler"]).lower()
    scheduler_args = {
        "exponentiallr": {"gamma": 0.99},
        "cosineannealinglr": {"T_max": hp["epochs"], "eta_min": 0.01 * hp["learning_rate"]},
        "none": None,
    }[scheduler]
    trainer = Trainer(
        model, loss_functions, optimizer_cls=optim_dict[str(hp["optimizer"]).lower()],
        optimizer_args={"lr": hp["learning_rate"]},
        scheduler_cls=None if scheduler == "none" else scheduler_dict[scheduler],
        scheduler_args=scheduler_args, device=device,
    )

    def validate() -> dict:
        model.set_is_batch_data(False)
        model.eval()
        try:
            return validation_errors(calc, valid_images, valid_labels)
        finally:
            model.set_is_batch_data(True)

    if valid_images:
        zero = validate()
        extra["zero_shot_valid_energy_mae"] = zero["energy_mae"]
        extra["zero_shot_valid_force_mae"] = zero["force_mae"]
        log.write(f"epoch 0 (after the energy-reference fit): valid energy MAE {zero['energy_mae']:.5f} eV/atom, "
                  f"force MAE {zero['force_mae']:.5f} eV/Å")

    history = []
    for epoch in range(1, hp["epochs"] + 1):
        learning_rate = trainer.get_lr()
        model.train()
        total, count = 0.0, 0
        for batch in loader:
            trainer.optimizer.zero_grad()
            batch = batch.to(trainer.device)
            output = model(batch)
            loss = sum(loss_def.get_loss(output, model) * weight for loss_def, weight in loss_functions)
            loss.backward()
            trainer.optimizer.step()
            n = int(output["num_atoms"].numel())
            total += float(loss.detach().cpu()) * n
            count += n
        trainer.scheduler_step()
        train_loss = total / count
        if not math.isfinite(train_loss):
            raise TrainingDivergedError(
                f"the training loss became {train_loss} at epoch {epoch}: lower the learning_rate "
                f"(now {hp['learning_rate']}) or check the labels"
            )
        row = {"epoch": epoch, "train_loss": train_loss, "learning_rate": learning_rate}
        if valid_images:
            errors = validate()
            row["valid_energy_mae"] = errors["energy_mae"]
            row["valid_force_mae"] = errors["force_mae"]
        history.append(row)
        log.write("epoch " + " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    model.eval()
    model.set_is_batch_data(False)

    config.update({
        "epoch": hp["epochs"], "random_seed": hp["seed"], "optimizer": str(hp["optimizer"]).lower(),
        "optim_param": {"lr": hp["learning_rate"]}, "scheduler": scheduler,
        "scheduler_param": scheduler_args or {}, "loss": loss_name,
        "loss_param": {"delta": hp["huber_delta"]} if loss_name == "huber" else {},
        "force_loss_weight": hp["force_weight"], "stress_loss_weight": hp["stress_weight"],
        "is_train_stress": use_stress, "batch_size": hp["batch_size"], "device": str(device),
    })
    return history, extra, trainer


def _check_round_trip(model, model_file: pathlib.Path, images, log) -> None:
    """The saved checkpoint, loaded like every other model file, predicts what the trained model predicts."""
    from aiida_reactmlip.models.loading import load_calculator

    with log.capture():
        reloaded = load_calculator("sevenn", model_file)
        saved = predict_energies(reloaded, images)
        memory = predict_energies(_calculator(model, "cpu"), images)
    if not np.allclose(saved, memory, rtol=0, atol=1e-5):
        raise TrainingError(f"the saved SevenNet checkpoint predicts {saved} eV, the trained model {memory} eV")
    log.write(f"round trip checked on {len(images)} frame(s): max |ΔE| {np.max(np.abs(saved - memory)):.2e} eV")
