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

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import FinetuneResult, TrainingError
from .common import composition_counts, fit_elemental_shift
from .hyperparameters import check_choice, is_number
from .torch_loop import DEFAULTS_FIRST, DEFAULTS_LAST, TorchFinetune, run_finetune

__all__ = ["DEFAULTS", "FREEZE_PRESETS", "MODEL_FILE_NAME", "SevennFinetune", "check_family_hyperparameters", "finetune"]

#: hyperparameters of a SevenNet fine-tuning and their defaults
#: (stress_weight: stress in kbar; freeze "graph": only the readout trains)
DEFAULTS: dict[str, Any] = {
    **DEFAULTS_FIRST,
    "optimizer": "adam",  # adam | adamw | sgd | radam | adagrad (sevenn.train.optim)
    "scheduler": "exponentiallr",  # exponentiallr (gamma 0.99 / epoch) | cosineannealinglr | none
    "loss": "mse",  # mse | huber (sevenn.train.optim.loss_dict)
    "huber_delta": 0.01,  # used with loss "huber" (SevenNet-0's own value)
    "energy_reference": "fit",  # "fit": refit the per-species energy shifts to the labels first; "keep"
    **DEFAULTS_LAST,
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

#: allowed values, lower case (sevenn.train.optim's optim_dict and loss_dict; schedulers: those set up here)
OPTIMIZERS = ("sgd", "adagrad", "adam", "adamw", "radam")
SCHEDULERS = ("exponentiallr", "cosineannealinglr", "none")
LOSSES = ("mse", "huber")


def check_family_hyperparameters(hp: Mapping[str, Any], *, from_scratch: bool = False) -> None:
    """SevenNet's own rules (hook of :func:`aiida_reactmlip.training.check_hyperparameters`)."""
    check_choice("optimizer", hp["optimizer"], OPTIMIZERS, lower=True)
    check_choice("scheduler", hp["scheduler"], SCHEDULERS, lower=True)
    check_choice("loss", hp["loss"], LOSSES, lower=True)
    if not (is_number(hp["huber_delta"]) and hp["huber_delta"] > 0):
        raise TrainingError(f"huber_delta must be a positive number, got {hp['huber_delta']!r}")


class SevennFinetune(TorchFinetune):
    """The SevenNet hooks of the shared loop: sevenn's graphs, ``Trainer``, loss definitions and checkpoint."""

    family, title, file_kind = "sevenn", "SevenNet", "checkpoint"
    defaults, freeze_presets = DEFAULTS, FREEZE_PRESETS
    model_file_name, log_file_name = MODEL_FILE_NAME, LOG_FILE_NAME

    def describe(self, info) -> str:
        return f"cutoff {float(self.config['cutoff'])} Å"

    def presets(self) -> dict[str, list[str]]:
        """The presets limited to the blocks this model has (SevenNet-0 has 5 interaction blocks)."""
        names = [name for name, _ in self.model.named_parameters()]
        return {preset: [p for p in prefixes if any(n.startswith(p + ".") for n in names)]
                for preset, prefixes in self.freeze_presets.items()}

    def calculator(self, device: str):
        from sevenn.calculator import SevenNetCalculator

        return SevenNetCalculator(model=self.model, file_type="model_instance", device=device)

    def shift_energy_reference(self, numbers_per_frame: Sequence, residuals) -> dict[str, float]:
        """Move SevenNet's per-species energy shifts onto the labels' energy reference (eV/atom)."""
        import torch
        from ase.data import chemical_symbols

        rescale = self.model._modules.get("rescale_atomic_energy")
        if rescale is None or not hasattr(rescale, "shift"):
            self.log.write("energy reference not refitted: this model has no rescale_atomic_energy shift")
            return {}
        type_map = self.config["_type_map"]
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
        self.config["shift"] = rescale.shift.detach().cpu().numpy().copy()
        return shift

    def training_data(self, images, labels, use_stress: bool):
        """sevenn's training graphs with our labels (eV, eV/Å, eV/Å^3 in sevenn's stress order)."""
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import atoms_to_graph

        cutoff = float(self.config["cutoff"])
        graphs = []
        for atoms, label in zip(images, labels, strict=True):
            frame = atoms.copy()
            frame.calc = None
            frame.info = {"y_energy": float(label.energy)}
            frame.arrays["y_force"] = np.array(label.forces, dtype=float)
            # sevenn keeps -σ in the order xx, yy, zz, xy, yz, zx (its calculator undoes exactly this)
            frame.info["y_stress"] = -np.asarray(label.stress)[[0, 1, 2, 5, 3, 4]] if use_stress else np.full(6, np.nan)
            graph = atoms_to_graph(frame, cutoff, transfer_info=False, y_from_calc=False)
            graphs.append(AtomGraphData.from_numpy_dict(graph))
        return graphs

    def data_loader(self, data, generator):
        from torch_geometric.loader import DataLoader

        return DataLoader(data, batch_size=self.hp["batch_size"], shuffle=True, generator=generator)

    def _loss_settings(self) -> tuple[str, dict[str, Any]]:
        loss = str(self.hp["loss"]).lower()
        return loss, ({"delta": self.hp["huber_delta"]} if loss == "huber" else {})

    def _scheduler_settings(self) -> tuple[str, dict[str, Any] | None]:
        scheduler = str(self.hp["scheduler"]).lower()
        return scheduler, {
            "exponentiallr": {"gamma": 0.99},
            "cosineannealinglr": {"T_max": self.hp["epochs"], "eta_min": 0.01 * self.hp["learning_rate"]},
            "none": None,
        }[scheduler]

    def make_trainer(self, use_stress: bool):
        from sevenn.train.loss import ForceLoss, PerAtomEnergyLoss, StressLoss
        from sevenn.train.optim import loss_dict, optim_dict, scheduler_dict
        from sevenn.train.trainer import Trainer

        hp = self.hp
        loss, loss_args = self._loss_settings()
        criterion = loss_dict[loss](**loss_args)
        self.loss_functions = [(PerAtomEnergyLoss(criterion=criterion), hp["energy_weight"]),
                               (ForceLoss(criterion=criterion), hp["force_weight"])]
        if use_stress:
            self.loss_functions.append((StressLoss(criterion=criterion), hp["stress_weight"]))
        scheduler, scheduler_args = self._scheduler_settings()
        return Trainer(
            self.model, self.loss_functions, optimizer_cls=optim_dict[str(hp["optimizer"]).lower()],
            optimizer_args={"lr": hp["learning_rate"]},
            scheduler_cls=None if scheduler == "none" else scheduler_dict[scheduler],
            scheduler_args=scheduler_args, device=self.device,
        )

    def batch_loss(self, batch):
        output = self.model(batch.to(self.trainer.device))
        loss = sum(loss_def.get_loss(output, self.model) * weight for loss_def, weight in self.loss_functions)
        return loss, int(output["num_atoms"].numel())

    def end_epoch(self) -> None:
        self.trainer.scheduler_step()

    def learning_rate(self) -> float:
        return self.trainer.get_lr()

    @contextlib.contextmanager
    def evaluation(self):
        self.model.set_is_batch_data(False)
        self.model.eval()
        try:
            yield
        finally:
            self.model.set_is_batch_data(True)

    def finish(self, use_stress: bool) -> None:
        hp = self.hp
        self.model.set_is_batch_data(False)
        loss, loss_args = self._loss_settings()
        scheduler, scheduler_args = self._scheduler_settings()
        self.config.update({
            "epoch": hp["epochs"], "random_seed": hp["seed"], "optimizer": str(hp["optimizer"]).lower(),
            "optim_param": {"lr": hp["learning_rate"]}, "scheduler": scheduler,
            "scheduler_param": scheduler_args or {}, "loss": loss, "loss_param": loss_args,
            "force_loss_weight": hp["force_weight"], "stress_loss_weight": hp["stress_weight"],
            "is_train_stress": use_stress, "batch_size": hp["batch_size"], "device": str(self.device),
        })

    def checkpoint(self, record):
        checkpoint = self.trainer.get_checkpoint_dict()
        checkpoint.update(config=self.config, epoch=self.hp["epochs"], reactmlip_finetune=record)
        return checkpoint


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
    return run_finetune(SevennFinetune, base_model_file, train_images, valid_images, workdir, hp)
