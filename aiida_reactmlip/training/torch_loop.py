"""The fine-tuning loop shared by the torch families trained in this process (CHGNet, SevenNet; pure, no aiida).

:func:`run_finetune` does what every such fine-tuning does: check the hyperparameters and labels, load the
base model, fit the energy reference, freeze, train epoch by epoch (recording the training loss and our own
validation errors: energy MAE eV/atom, force MAE eV/Å), save the model file so that its bytes depend only on
the weights, and check that the saved file predicts what the trained model predicts.  A family subclasses
:class:`TorchFinetune` and fills in its hooks: how to load its model, build its training data, its trainer
and its loss, and what its saved file holds.
"""

from __future__ import annotations

import abc
import contextlib
import math
import pathlib
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from . import FinetuneResult, TrainingDivergedError, TrainingError, check_hyperparameters
from .common import (
    FrameLabels,
    TrainingLog,
    apply_freeze,
    check_model_elements,
    is_periodic_3d,
    predict_energies,
    read_labels,
    save_torch_deterministic,
    seed_everything,
    sha256_file,
    torch_threads,
    validation_errors,
)

__all__ = ["DEFAULTS_FIRST", "DEFAULTS_LAST", "TorchFinetune", "run_finetune"]

#: the hyperparameters every torch family has, with their defaults; a family's ``DEFAULTS`` is
#: ``{**DEFAULTS_FIRST, <its own>, **DEFAULTS_LAST}`` (the order is that of the record in the model file)
DEFAULTS_FIRST: dict[str, Any] = {
    "epochs": 10,
    "learning_rate": 1e-3,  # per optimizer step
    "batch_size": 4,  # frames
    "seed": 0,
    "energy_weight": 1.0,
    "force_weight": 1.0,
    # stress is only trained when > 0 AND every training frame is 3D-periodic with a stress label
    "stress_weight": 0.0,
    "freeze": "none",  # "none" | "graph" (only the readout trains) | list of parameter-name prefixes
}
DEFAULTS_LAST: dict[str, Any] = {
    "device": "cpu",
    "num_threads": 0,  # 0: leave torch's thread count as it is
}


class TorchFinetune(abc.ABC):
    """One fine-tuning of a torch model with its package's own trainer; subclasses fill in the hooks.

    Set by :meth:`load`: ``model`` (a ``torch.nn.Module`` ours to modify) and ``config`` (what the family
    keeps with it, or ``None``); by :meth:`make_trainer`: ``trainer`` (with an ``optimizer``).  ``extra``
    collects what the run reports beside the hyperparameters (``targets``, energy shifts, zero-shot errors).
    """

    family: ClassVar[str]  #: e.g. "chgnet"
    title: ClassVar[str]  #: e.g. "CHGNet", in messages
    file_kind: ClassVar[str]  #: what its model file is called in messages ("model file", "checkpoint")
    defaults: ClassVar[dict[str, Any]]
    freeze_presets: ClassVar[dict[str, list[str]]]
    model_file_name: ClassVar[str]
    log_file_name: ClassVar[str]
    #: True: the history's ``learning_rate`` is read after the epoch's scheduler steps, False: before them
    learning_rate_after_epoch: ClassVar[bool] = False

    def __init__(self, hp: dict[str, Any], log: TrainingLog):
        self.hp, self.log = hp, log
        self.device = hp["device"]
        self.model: Any = None
        self.config: Any = None
        self.trainer: Any = None
        self.extra: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------- hooks

    def load(self, base_model_file) -> dict[str, Any]:
        """Load the base model as the evaluation does (``model``, ``config``); returns its description
        (``elements``, ``sha256``, ``n_parameters``...)."""
        from aiida_reactmlip.models import loading

        if base_model_file is None:
            raise TrainingError(
                f"{self.title} fine-tuning needs a base {self.file_kind} (training from scratch is MACE-only)"
            )
        path = pathlib.Path(base_model_file)
        try:
            info = loading.describe_model_file(self.family, path)  # leaves the built model for _load_model
            self.model, self.config = loading._load_model(self.family, loading._resolve(path))
        except Exception as exc:
            raise TrainingError(f"cannot load the base {self.title} {self.file_kind} {path}: {exc}") from exc
        return info

    @abc.abstractmethod
    def describe(self, info: dict[str, Any]) -> str:
        """What the first log line says about the base model beyond its parameter count."""

    @abc.abstractmethod
    def calculator(self, device: str):
        """The family's ASE calculator on ``model``, as the evaluation builds it."""

    @abc.abstractmethod
    def shift_energy_reference(self, numbers_per_frame: Sequence, residuals: np.ndarray) -> dict[str, float]:
        """Move the model's elemental energies by the least-squares shift of ``residuals`` (label minus
        model, eV per frame); returns the shift (eV/atom) by element symbol."""

    def presets(self) -> dict[str, list[str]]:
        """The ``freeze`` presets for ``model`` (parameter-name prefixes by preset name)."""
        return self.freeze_presets

    def after_freeze(self) -> None:
        """Set what trains beyond ``freeze`` (e.g. the elemental references)."""

    @abc.abstractmethod
    def training_data(self, images: Sequence, labels: Sequence[FrameLabels], use_stress: bool):
        """The training frames in the family's own form (graphs, a dataset)."""

    @abc.abstractmethod
    def data_loader(self, data, generator):
        """Shuffled batches of ``data`` (order drawn from ``generator``)."""

    @abc.abstractmethod
    def make_trainer(self, use_stress: bool):
        """The family's trainer (optimizer, scheduler, loss) with ``model`` on its device."""

    @abc.abstractmethod
    def batch_loss(self, batch) -> tuple[Any, int]:
        """The loss tensor of one batch and the number of frames it averages."""

    def after_step(self, batch_number: int, n_batches: int) -> None:
        """After the optimizer step of batch ``batch_number`` (1-based)."""

    def end_epoch(self) -> None:
        """After the last batch of an epoch."""

    def learning_rate(self) -> float:
        return float(self.trainer.optimizer.param_groups[0]["lr"])

    @contextlib.contextmanager
    def evaluation(self):
        """The model set up for the ASE calculator (per-frame, eval mode) within the block."""
        self.model.eval()
        yield

    def finish(self, use_stress: bool) -> None:
        """After the last epoch (model in eval mode)."""

    @abc.abstractmethod
    def checkpoint(self, record: dict[str, Any]) -> dict[str, Any]:
        """What the model file holds; ``record`` (base model sha256, hyperparameters...) goes in it."""

    # ------------------------------------------------------------------------------- the loop

    def train(self, info, train_images, train_labels, valid_images, valid_labels) -> list[dict[str, float]]:
        """Energy reference, freeze, epochs; returns the history (one dict per epoch)."""
        import torch

        hp, log, model = self.hp, self.log, self.model
        seed_everything(hp["seed"])
        log.write(f"base {self.title} {info.get('sha256', '')[:12]}: {info['n_parameters']} parameters, "
                  f"{self.describe(info)}")
        log.write(f"hyperparameters: {hp}")
        # the evaluation calculator; building it may set up the model as the evaluation uses it
        calc = self.calculator(self.device)
        if hp["energy_reference"] == "fit":
            residual = np.array([lab.energy for lab in train_labels]) - predict_energies(calc, train_images)
            shift = self.shift_energy_reference([lab.numbers for lab in train_labels], residual)
            self.extra["elemental_shift_eV_per_atom"] = shift
            log.write(f"energy reference refitted: per-element shifts (eV/atom) {shift}; mean |residual| before "
                      f"{np.mean(np.abs(residual) / [lab.n_atoms for lab in train_labels]):.4f} eV/atom")
        frozen = apply_freeze(model, hp["freeze"], self.presets())
        if frozen:
            log.write(f"frozen {len(frozen)} parameter tensors ({hp['freeze']})")
        self.after_freeze()

        use_stress = hp["stress_weight"] > 0 and all(
            is_periodic_3d(a) and lab.stress is not None for a, lab in zip(train_images, train_labels, strict=True)
        )
        if hp["stress_weight"] > 0 and not use_stress:
            log.write("stress not trained: not every training frame is 3D-periodic with a stress label")
        self.extra["targets"] = "efs" if use_stress else "ef"
        data = self.training_data(train_images, train_labels, use_stress)
        loader = self.data_loader(data, torch.Generator().manual_seed(hp["seed"]))
        self.trainer = self.make_trainer(use_stress)

        def validate() -> dict[str, float]:
            with self.evaluation():
                return validation_errors(calc, valid_images, valid_labels)

        if valid_images:
            zero = validate()
            self.extra["zero_shot_valid_energy_mae"] = zero["energy_mae"]
            self.extra["zero_shot_valid_force_mae"] = zero["force_mae"]
            log.write(f"epoch 0 (after the energy-reference fit): valid energy MAE {zero['energy_mae']:.5f} "
                      f"eV/atom, force MAE {zero['force_mae']:.5f} eV/Å")

        history = []
        optimizer = self.trainer.optimizer
        for epoch in range(1, hp["epochs"] + 1):
            learning_rate = self.learning_rate()
            model.train()
            total, count = 0.0, 0
            for number, batch in enumerate(loader, start=1):
                loss, n = self.batch_loss(batch)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                self.after_step(number, len(loader))
                total += float(loss.detach().cpu()) * n
                count += n
            self.end_epoch()
            if self.learning_rate_after_epoch:
                learning_rate = self.learning_rate()
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
            log.write("epoch " + " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in row.items()))
        model.eval()
        self.finish(use_stress)
        return history

    def check_round_trip(self, model_file: pathlib.Path, images) -> None:
        """The saved file, loaded like every other model file, predicts what the trained model predicts."""
        from aiida_reactmlip.models.loading import load_calculator

        with self.log.capture():
            saved = predict_energies(load_calculator(self.family, model_file), images)
            memory = predict_energies(self.calculator("cpu"), images)
        if not np.all(np.isfinite(memory)):  # a finite loss can still leave weights that predict NaN
            raise TrainingDivergedError(f"the trained {self.title} predicts non-finite energies {memory} eV: "
                                        "training diverged; lower the learning rate")
        if not np.allclose(saved, memory, rtol=0, atol=1e-5):
            raise TrainingError(f"the saved {self.title} {self.file_kind} predicts {saved} eV, "
                                f"the trained model {memory} eV")
        self.log.write(f"round trip checked on {len(images)} frame(s): "
                       f"max |ΔE| {np.max(np.abs(saved - memory)):.2e} eV")


def run_finetune(kind: type[TorchFinetune], base_model_file, train_images, valid_images, workdir,
                 hp: dict[str, Any]) -> FinetuneResult:
    """Fine-tune the base model of family ``kind`` on labelled frames; see the family's ``finetune``."""
    check_hyperparameters(kind.family, hp)
    hp = {**kind.defaults, **hp}
    train_images, valid_images = list(train_images), list(valid_images or [])
    if not train_images:
        raise TrainingError("the training set is empty: fine-tuning needs at least one labelled frame")
    train_labels = read_labels(train_images, "training")
    valid_labels = read_labels(valid_images, "validation")

    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_file = workdir / kind.log_file_name
    start = time.perf_counter()
    with TrainingLog(log_file) as log, torch_threads(hp["num_threads"]):
        run = kind(hp, log)
        with log.capture():
            info = run.load(base_model_file)
        check_model_elements(
            f"{pathlib.Path(base_model_file).name} ({kind.family})", info["elements"],
            {"training": train_images, "validation": valid_images},
        )
        with log.capture():
            history = run.train(info, train_images, train_labels, valid_images, valid_labels)
        model_file = workdir / kind.model_file_name
        run.model.to("cpu")
        record = {
            "base_model_sha256": info["sha256"],
            "hyperparameters": {k: (list(v) if isinstance(v, tuple) else v) for k, v in hp.items()},
            "n_train": len(train_images),
            "n_valid": len(valid_images),
            **run.extra,
        }
        save_torch_deterministic(run.checkpoint(record), model_file)
        run.check_round_trip(model_file, (valid_images or train_images)[:2])
        seconds = time.perf_counter() - start
        log.write(f"saved {model_file.name} sha256 {sha256_file(model_file)} after {seconds:.1f} s")
    return FinetuneResult(model_file, history, {**hp, **run.extra}, seconds, log_file)
