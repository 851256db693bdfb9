"""Fine-tune a pretrained CHGNet model on labelled frames (pure: ASE Atoms in, a model file out; no aiida).

Uses CHGNet's own machinery: ``chgnet.data.dataset.StructureData`` (graphs built by the base model's
``graph_converter``), ``chgnet.trainer.Trainer`` (its optimizer, learning-rate scheduler and
``CombinedLoss``) and the model's forward pass; the epoch loop is ours so that the training loss and our
own validation errors (eV/atom, eV/Å) are recorded each epoch and nothing is written but the final file.

Units: CHGNet 0.3.0 is intensive: it is trained on energies per atom (eV/atom), forces in eV/Å and
stress in GPa.  Frames that are not periodic in 3D are boxed with
:func:`aiida_reactmlip.models.loading.ensure_cell`, exactly as the evaluation calculator boxes them.
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

#: hyperparameters of a CHGNet fine-tuning and their defaults
DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "learning_rate": 1e-3,
    "batch_size": 4,
    "seed": 0,
    "energy_weight": 1.0,
    "force_weight": 1.0,
    # stress (GPa) is only trained when > 0 AND every training frame is 3D-periodic with a stress label
    "stress_weight": 0.0,
    "freeze": "none",  # "none" | "graph" (only the readout MLP trains) | list of parameter-name prefixes
    "optimizer": "Adam",  # Adam | AdamW | SGD | RAdam (chgnet.trainer.Trainer)
    "scheduler": "CosLR",  # CosLR | ExponentialLR | CosRestartLR | MultiStepLR (chgnet.trainer.Trainer)
    "criterion": "MSE",  # MSE | MAE | Huber
    "energy_reference": "fit",  # "fit": refit the elemental reference energies to the labels first; "keep"
    "train_composition_model": False,
    "device": "cpu",
    "num_threads": 0,  # 0: leave torch's thread count as it is
}

#: ``freeze`` presets: parameter-name prefixes frozen by each
FREEZE_PRESETS: dict[str, list[str]] = {
    # embeddings, basis expansions and every graph-convolution layer: only readout_norm + mlp train
    "graph": [
        "atom_embedding",
        "bond_basis_expansion",
        "bond_embedding",
        "bond_weights_ag",
        "bond_weights_bg",
        "angle_basis_expansion",
        "angle_embedding",
        "atom_conv_layers",
        "bond_conv_layers",
        "angle_layers",
        "site_wise",
    ],
}

#: name of the fine-tuned model file written in ``workdir``
MODEL_FILE_NAME = "chgnet_finetuned.pth.tar"
LOG_FILE_NAME = "finetune_chgnet.log"

_GPA_PER_EV_A3 = 160.21766208  # 1 eV/Å^3 in GPa


def _check_hyperparameters(hp: dict) -> None:
    check_common_hyperparameters(hp)
    if hp["optimizer"] not in ("Adam", "AdamW", "SGD", "RAdam"):
        raise TrainingError(f"optimizer must be one of Adam, AdamW, SGD, RAdam; got {hp['optimizer']!r}")
    if hp["scheduler"] not in ("CosLR", "ExponentialLR", "CosRestartLR", "MultiStepLR"):
        raise TrainingError(
            f"scheduler must be one of CosLR, ExponentialLR, CosRestartLR, MultiStepLR; got {hp['scheduler']!r}"
        )
    if hp["criterion"] not in ("MSE", "MAE", "Huber"):
        raise TrainingError(f"criterion must be one of MSE, MAE, Huber; got {hp['criterion']!r}")


def _load_base(base_model_file) -> tuple[Any, dict]:
    """The base CHGNet (a fresh object we may modify) and what its file covers; loads like evaluation does."""
    from aiida_reactmlip.models import loading

    if base_model_file is None:
        raise TrainingError("CHGNet fine-tuning needs a base model file (training from scratch is MACE-only)")
    path = pathlib.Path(base_model_file)
    try:
        info = loading.describe_model_file("chgnet", path)  # leaves the built model for _load_model
        model, _ = loading._load_model("chgnet", loading._resolve(path))
    except Exception as exc:
        raise TrainingError(f"cannot load the base CHGNet model {path}: {exc}") from exc
    return model, info


def _structure(atoms):
    from pymatgen.io.ase import AseAtomsAdaptor

    from aiida_reactmlip.models.loading import ensure_cell

    return AseAtomsAdaptor.get_structure(ensure_cell(atoms))


def _calculator(model, device: str):
    from aiida_reactmlip.models.loading import _boxing_chgnet_calculator_class

    return _boxing_chgnet_calculator_class()(model=model, use_device=device)


def _shift_composition_model(model, shift: dict[int, float]) -> None:
    """Add δ_Z (eV/atom) to CHGNet's elemental reference energies (AtomRef weights).

    The AtomRef energy is Σ_Z w_Z x_Z, per atom with fractions x_Z (intensive model) or total with counts:
    either way the total energy of a frame changes by Σ_Z n_Z δ_Z.
    """
    import torch

    weight = model.composition_model.fc.weight  # (1, 94); energy = Σ_Z w_Z x_Z with x_Z fraction or count
    with torch.no_grad():
        for z, delta in shift.items():
            weight[0, z - 1] += delta


def finetune(base_model_file, train_images, valid_images, workdir, **hp) -> FinetuneResult:
    """Fine-tune the CHGNet in ``base_model_file`` on ``train_images``; see :data:`DEFAULTS`.

    ``train_images`` / ``valid_images``: ASE Atoms with energy (eV) and forces (eV/Å) labels (stress
    eV/Å^3 optional).  ``valid_images`` may be empty: the history then holds only ``epoch``,
    ``train_loss`` and ``learning_rate``.  Returns a :class:`FinetuneResult` whose ``model_file`` (in
    ``workdir``) loads with ``load_calculator("chgnet", file)`` and with ``CHGNet.from_file``.

    History per epoch: ``train_loss`` (CHGNet's combined loss averaged over the epoch's batches: weighted
    MSE of energy per atom in eV/atom, forces in eV/Å, stress in GPa, with the weights given),
    ``learning_rate`` at the epoch's end, and, with validation frames, ``valid_energy_mae`` (eV/atom, raw
    energies) and ``valid_force_mae`` (eV/Å) computed by us with the ASE calculator after the epoch.
    """
    hp = {**DEFAULTS, **hp}
    unknown = sorted(set(hp) - set(DEFAULTS))
    if unknown:
        raise TrainingError(f"unknown chgnet hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(DEFAULTS))}")
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
            model, info = _load_base(base_model_file)
        check_model_elements(
            f"{pathlib.Path(base_model_file).name} (chgnet)", info["elements"],
            {"training": train_images, "validation": valid_images},
        )
        history, extra = _train(model, info, train_images, train_labels, valid_images, valid_labels, hp, log)
        model_file = workdir / MODEL_FILE_NAME
        model.to("cpu")
        save_torch_deterministic(
            {
                "model": model.as_dict(),
                "reactmlip_finetune": {
                    "base_model_sha256": info["sha256"],
                    "hyperparameters": {k: (list(v) if isinstance(v, tuple) else v) for k, v in hp.items()},
                    "n_train": len(train_images),
                    "n_valid": len(valid_images),
                    **extra,
                },
            },
            model_file,
        )
        _check_round_trip(model, model_file, (valid_images or train_images)[:2], log)
        seconds = time.perf_counter() - start
        log.write(f"saved {model_file.name} sha256 {sha256_file(model_file)} after {seconds:.1f} s")
    effective = {**hp, **extra}
    return FinetuneResult(model_file, history, effective, seconds, workdir / LOG_FILE_NAME)


def _train(model, info, train_images, train_labels, valid_images, valid_labels, hp, log):
    import torch
    from ase.data import chemical_symbols
    from chgnet.data.dataset import StructureData, collate_graphs
    from chgnet.trainer import Trainer
    from torch.utils.data import DataLoader

    seed_everything(hp["seed"])
    device = hp["device"]
    intensive = bool(model.is_intensive)
    log.write(f"base CHGNet {info.get('sha256', '')[:12]}: {info['n_parameters']} parameters, intensive={intensive}")
    log.write(f"hyperparameters: {hp}")

    # the evaluation calculator; it also sets the isolated-atom response of model.graph_converter ("warn"),
    # so training graphs are built exactly as the evaluation builds them
    with log.capture():
        calc = _calculator(model, device)

    extra: dict[str, Any] = {}
    zero_train = predict_energies(calc, train_images)
    if hp["energy_reference"] == "fit":
        residual = np.array([lab.energy for lab in train_labels]) - zero_train
        shift = fit_elemental_shift([lab.numbers for lab in train_labels], residual)
        _shift_composition_model(model, shift)
        extra["elemental_shift_eV_per_atom"] = {chemical_symbols[z]: d for z, d in shift.items()}
        log.write(f"energy reference refitted: per-element shifts (eV/atom) {shift}; "
                  f"mean |residual| before {np.mean(np.abs(residual) / [l.n_atoms for l in train_labels]):.4f} eV/atom")
    frozen = apply_freeze(model, hp["freeze"], FREEZE_PRESETS)
    if frozen:
        log.write(f"frozen {len(frozen)} parameter tensors ({hp['freeze']})")
    for param in model.composition_model.parameters():
        param.requires_grad = bool(hp["train_composition_model"])

    use_stress = hp["stress_weight"] > 0 and all(
        is_periodic_3d(a) and lab.stress is not None for a, lab in zip(train_images, train_labels, strict=True)
    )
    targets = "efs" if use_stress else "ef"
    if hp["stress_weight"] > 0 and not use_stress:
        log.write("stress not trained: not every training frame is 3D-periodic with a stress label")
    extra["targets"] = targets

    structures = [_structure(a) for a in train_images]
    energies = [lab.energy / lab.n_atoms if intensive else lab.energy for lab in train_labels]
    forces = [lab.forces.tolist() for lab in train_labels]
    stresses = None
    if use_stress:
        from ase.stress import voigt_6_to_full_3x3_stress

        # StructureData multiplies stress by -0.1 (VASP kBar -> CHGNet GPa); CHGNet's GPa stress has ASE's sign
        stresses = [(-10.0 * _GPA_PER_EV_A3 * voigt_6_to_full_3x3_stress(lab.stress)).tolist() for lab in train_labels]
    with log.capture():
        dataset = StructureData(
            structures, energies, forces, stresses=stresses, structure_ids=list(range(len(structures))),
            graph_converter=model.graph_converter, shuffle=False,
        )
        for index in range(len(dataset)):  # build (and cache) every graph now; fail loudly, never substitute
            dataset[index]
    if dataset.failed_idx:
        raise TrainingError(
            f"CHGNet could not build graphs for training frame(s) {sorted(dataset.failed_graph_id)} "
            f"({', '.join(dataset.failed_graph_id.values())})"
        )
    generator = torch.Generator().manual_seed(hp["seed"])
    loader = DataLoader(dataset, batch_size=hp["batch_size"], shuffle=True, collate_fn=collate_graphs,
                        generator=generator, num_workers=0)

    with log.capture():
        trainer = Trainer(
            model=model, targets=targets, energy_loss_ratio=hp["energy_weight"], force_loss_ratio=hp["force_weight"],
            stress_loss_ratio=hp["stress_weight"], optimizer=hp["optimizer"], scheduler=hp["scheduler"],
            criterion=hp["criterion"], epochs=hp["epochs"], learning_rate=hp["learning_rate"],
            torch_seed=hp["seed"], data_seed=hp["seed"], use_device=device,
        )
    model.to(trainer.device)

    if valid_images:
        zero = validation_errors(calc, valid_images, valid_labels)
        extra["zero_shot_valid_energy_mae"] = zero["energy_mae"]
        extra["zero_shot_valid_force_mae"] = zero["force_mae"]
        log.write(f"epoch 0 (after the energy-reference fit): valid energy MAE {zero['energy_mae']:.5f} eV/atom, "
                  f"force MAE {zero['force_mae']:.5f} eV/Å")

    history = []
    n_batches = len(loader)
    step_at = set((np.arange(1, 11) * n_batches // 10).tolist())  # CHGNet steps its scheduler 10x per epoch
    for epoch in range(1, hp["epochs"] + 1):
        model.train()
        total, count = 0.0, 0
        for batch_index, (graphs, batch_targets) in enumerate(loader):
            for graph in graphs:
                graph.atom_frac_coord.requires_grad = True
            graphs = [g.to(trainer.device) for g in graphs]
            batch_targets = {k: trainer.move_to(v, trainer.device) for k, v in batch_targets.items()}
            prediction = model(graphs, task=targets)
            loss = trainer.criterion(batch_targets, prediction)["loss"]
            trainer.optimizer.zero_grad()
            loss.backward()
            trainer.optimizer.step()
            if batch_index + 1 in step_at:
                trainer.scheduler.step()
            total += float(loss.detach().cpu()) * len(graphs)
            count += len(graphs)
        train_loss = total / count
        if not math.isfinite(train_loss):
            raise TrainingDivergedError(
                f"the training loss became {train_loss} at epoch {epoch}: lower the learning_rate "
                f"(now {hp['learning_rate']}) or check the labels"
            )
        row = {"epoch": epoch, "train_loss": train_loss, "learning_rate": float(trainer.optimizer.param_groups[0]["lr"])}
        if valid_images:
            model.eval()
            errors = validation_errors(calc, valid_images, valid_labels)
            row["valid_energy_mae"] = errors["energy_mae"]
            row["valid_force_mae"] = errors["force_mae"]
        history.append(row)
        log.write("epoch " + " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    model.eval()
    return history, extra


def _check_round_trip(model, model_file: pathlib.Path, images, log) -> None:
    """The saved file, loaded like every other model file, predicts what the in-memory model predicts."""
    from aiida_reactmlip.models.loading import load_calculator

    with log.capture():
        reloaded = load_calculator("chgnet", model_file)
        saved = predict_energies(reloaded, images)
        memory = predict_energies(_calculator(model, "cpu"), images)
    if not np.allclose(saved, memory, rtol=0, atol=1e-5):
        raise TrainingError(f"the saved CHGNet file predicts {saved} eV, the trained model {memory} eV")
    log.write(f"round trip checked on {len(images)} frame(s): max |ΔE| {np.max(np.abs(saved - memory)):.2e} eV")
