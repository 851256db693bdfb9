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

from collections.abc import Mapping, Sequence
from typing import Any

from . import FinetuneResult, TrainingError
from .common import fit_elemental_shift
from .hyperparameters import check_choice
from .torch_loop import DEFAULTS_FIRST, DEFAULTS_LAST, TorchFinetune, run_finetune

__all__ = ["DEFAULTS", "FREEZE_PRESETS", "MODEL_FILE_NAME", "ChgnetFinetune", "check_family_hyperparameters", "finetune"]

#: hyperparameters of a CHGNet fine-tuning and their defaults
#: (stress_weight: stress in GPa; freeze "graph": only the readout MLP trains)
DEFAULTS: dict[str, Any] = {
    **DEFAULTS_FIRST,
    "optimizer": "Adam",  # Adam | AdamW | SGD | RAdam (chgnet.trainer.Trainer)
    "scheduler": "CosLR",  # CosLR | ExponentialLR | CosRestartLR | MultiStepLR (chgnet.trainer.Trainer)
    "criterion": "MSE",  # MSE | MAE | Huber
    "energy_reference": "fit",  # "fit": refit the elemental reference energies to the labels first; "keep"
    "train_composition_model": False,
    **DEFAULTS_LAST,
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

#: allowed values (chgnet.trainer.Trainer)
OPTIMIZERS = ("Adam", "AdamW", "SGD", "RAdam")
SCHEDULERS = ("CosLR", "ExponentialLR", "CosRestartLR", "MultiStepLR")
CRITERIA = ("MSE", "MAE", "Huber")


def check_family_hyperparameters(hp: Mapping[str, Any], *, from_scratch: bool = False) -> None:
    """CHGNet's own rules (hook of :func:`aiida_reactmlip.training.check_hyperparameters`)."""
    check_choice("optimizer", hp["optimizer"], OPTIMIZERS)
    check_choice("scheduler", hp["scheduler"], SCHEDULERS)
    check_choice("criterion", hp["criterion"], CRITERIA)


class ChgnetFinetune(TorchFinetune):
    """The CHGNet hooks of the shared loop: CHGNet's ``StructureData``, ``Trainer`` and ``CombinedLoss``."""

    family, title, file_kind = "chgnet", "CHGNet", "model file"
    defaults, freeze_presets = DEFAULTS, FREEZE_PRESETS
    model_file_name, log_file_name = MODEL_FILE_NAME, LOG_FILE_NAME
    learning_rate_after_epoch = True

    def describe(self, info) -> str:
        return f"intensive={bool(self.model.is_intensive)}"

    def calculator(self, device: str):
        # also sets the isolated-atom response of model.graph_converter ("warn"), so training graphs are
        # built exactly as the evaluation builds them
        from aiida_reactmlip.models.loading import _boxing_chgnet_calculator_class

        return _boxing_chgnet_calculator_class()(model=self.model, use_device=device)

    def shift_energy_reference(self, numbers_per_frame: Sequence, residuals) -> dict[str, float]:
        """Add δ_Z (eV/atom) to CHGNet's elemental reference energies (AtomRef weights).

        The AtomRef energy is Σ_Z w_Z x_Z, per atom with fractions x_Z (intensive model) or total with
        counts: either way the total energy of a frame changes by Σ_Z n_Z δ_Z.
        """
        import torch
        from ase.data import chemical_symbols

        shift = fit_elemental_shift(numbers_per_frame, residuals)
        weight = self.model.composition_model.fc.weight  # (1, 94)
        with torch.no_grad():
            for z, delta in shift.items():
                weight[0, z - 1] += delta
        return {chemical_symbols[z]: d for z, d in shift.items()}

    def after_freeze(self) -> None:
        for param in self.model.composition_model.parameters():
            param.requires_grad = bool(self.hp["train_composition_model"])

    def training_data(self, images, labels, use_stress: bool):
        from chgnet.data.dataset import StructureData
        from pymatgen.io.ase import AseAtomsAdaptor

        from aiida_reactmlip.models.loading import ensure_cell

        intensive = bool(self.model.is_intensive)
        structures = [AseAtomsAdaptor.get_structure(ensure_cell(a)) for a in images]
        energies = [lab.energy / lab.n_atoms if intensive else lab.energy for lab in labels]
        forces = [lab.forces.tolist() for lab in labels]
        stresses = None
        if use_stress:
            from ase.stress import voigt_6_to_full_3x3_stress

            # StructureData multiplies stress by -0.1 (VASP kBar -> CHGNet GPa); CHGNet's GPa stress has ASE's sign
            stresses = [(-10.0 * _GPA_PER_EV_A3 * voigt_6_to_full_3x3_stress(lab.stress)).tolist() for lab in labels]
        dataset = StructureData(
            structures, energies, forces, stresses=stresses, structure_ids=list(range(len(structures))),
            graph_converter=self.model.graph_converter, shuffle=False,
        )
        for index in range(len(dataset)):  # build (and cache) every graph now; fail loudly, never substitute
            dataset[index]
        if dataset.failed_idx:
            raise TrainingError(
                f"CHGNet could not build graphs for training frame(s) {sorted(dataset.failed_graph_id)} "
                f"({', '.join(dataset.failed_graph_id.values())})"
            )
        return dataset

    def data_loader(self, data, generator):
        from chgnet.data.dataset import collate_graphs
        from torch.utils.data import DataLoader

        return DataLoader(data, batch_size=self.hp["batch_size"], shuffle=True, collate_fn=collate_graphs,
                          generator=generator, num_workers=0)

    def make_trainer(self, use_stress: bool):
        from chgnet.trainer import Trainer

        hp = self.hp
        trainer = Trainer(
            model=self.model, targets=self.extra["targets"], energy_loss_ratio=hp["energy_weight"],
            force_loss_ratio=hp["force_weight"], stress_loss_ratio=hp["stress_weight"], optimizer=hp["optimizer"],
            scheduler=hp["scheduler"], criterion=hp["criterion"], epochs=hp["epochs"],
            learning_rate=hp["learning_rate"], torch_seed=hp["seed"], data_seed=hp["seed"], use_device=self.device,
        )
        self.model.to(trainer.device)
        return trainer

    def batch_loss(self, batch):
        graphs, targets = batch
        for graph in graphs:
            graph.atom_frac_coord.requires_grad = True
        graphs = [g.to(self.trainer.device) for g in graphs]
        targets = {k: self.trainer.move_to(v, self.trainer.device) for k, v in targets.items()}
        prediction = self.model(graphs, task=self.extra["targets"])
        return self.trainer.criterion(targets, prediction)["loss"], len(graphs)

    def after_step(self, batch_number: int, n_batches: int) -> None:
        if batch_number in {k * n_batches // 10 for k in range(1, 11)}:  # CHGNet steps its scheduler 10x per epoch
            self.trainer.scheduler.step()

    def checkpoint(self, record):
        return {"model": self.model.as_dict(), "reactmlip_finetune": record}


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
    return run_finetune(ChgnetFinetune, base_model_file, train_images, valid_images, workdir, hp)
