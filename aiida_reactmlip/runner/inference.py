"""Inference of one model on many frames: the per-frame ASE loop and the batched CHGNet and SevenNet paths.

Never imports aiida. Energies are totals in eV, forces eV/Å, stress (F, 6) eV/Å^3 in ASE Voigt order
(xx, yy, zz, yz, xz, xy) and sign, NaN for frames that are not periodic in 3D (or without
``compute_stress``). :func:`choose_mode` and :func:`batch_size_for` decide between the paths (see
docs/benchmark.md, "Batched or not").
"""

from __future__ import annotations

import math
import time

import numpy as np

from aiida_reactmlip.models import ensure_cell, is_periodic_3d
from aiida_reactmlip.runner.files import log

#: families with a batched path in this runner
BATCHED_FAMILIES = ("chgnet", "sevenn")

#: ``mode: auto`` on CPU: families whose batched path beat the per-frame ASE loop when measured on CPU
#: (``python -m benchmarks evaluate_modes``; see :func:`choose_mode` and docs/benchmark.md). None did:
#: on CPU the frames are shared by worker processes instead (:func:`aiida_reactmlip.runner.workers.plan_workers`).
BATCHED_ON_CPU: tuple[str, ...] = ()
#: The largest batch ``mode: auto`` would use on CPU for a family of :data:`BATCHED_ON_CPU`: CHGNet's batches
#: of 8 took 1.35x the time per frame of its loop and ~0.5 GB of memory per 37-atom frame.
CPU_AUTO_BATCH_SIZE = 4


class Progress:
    """Prints a line about every 10% of the frames."""

    def __init__(self, n_frames: int):
        self.n_frames = n_frames
        self.step = max(1, math.ceil(n_frames / 10))
        self.next = self.step
        self.start = time.perf_counter()

    def update(self, done: int) -> None:
        if done >= self.next or done == self.n_frames:
            elapsed = time.perf_counter() - self.start
            percent = 100.0 * done / max(self.n_frames, 1)
            log(f"progress: {done}/{self.n_frames} frames ({percent:.0f}%), {elapsed:.1f} s elapsed")
            while self.next <= done:
                self.next += self.step


def evaluate_ase(calc, images, compute_stress: bool = True, progress: Progress | None = None):
    """Energies (F,), forces (list of (n_i, 3)), stress (F, 6) through an ASE calculator, frame by frame."""
    n_frames = len(images)
    energies = np.full(n_frames, np.nan)
    forces = []
    stress = np.full((n_frames, 6), np.nan)
    for i, atoms in enumerate(images):
        atoms = atoms.copy()
        atoms.calc = calc
        energies[i] = atoms.get_potential_energy()
        forces.append(np.array(atoms.get_forces(), dtype=float))
        if compute_stress and is_periodic_3d(atoms):
            stress[i] = atoms.get_stress(voigt=True)
        if progress is not None:
            progress.update(i + 1)
    return energies, forces, stress


def evaluate_chgnet_batched(model, images, batch_size: int = 16, compute_stress: bool = True,
                            progress: Progress | None = None):
    """Like :func:`evaluate_ase`, through ``CHGNet.predict_structure`` in batches.

    CHGNet predicts the energy per atom (eV/atom, for its intensive models) and the stress in GPa;
    both are converted here to the units of its ASE calculator: total energy in eV and stress in
    eV/A^3 with ASE's sign (``stress_weight = ase.units.GPa``, as ``CHGNetCalculator`` uses).
    Frames that are not periodic in 3D are boxed (:func:`aiida_reactmlip.models.ensure_cell`).
    """
    from ase import units
    from ase.stress import full_3x3_to_voigt_6_stress
    from pymatgen.io.ase import AseAtomsAdaptor

    n_frames = len(images)
    energies = np.full(n_frames, np.nan)
    forces: list[np.ndarray] = []
    stress = np.full((n_frames, 6), np.nan)
    periodic = [is_periodic_3d(atoms) for atoms in images]
    task = "efs" if compute_stress and any(periodic) else "ef"
    extensive = bool(getattr(model, "is_intensive", True))
    for start in range(0, n_frames, batch_size):
        chunk = images[start : start + batch_size]
        structures = [AseAtomsAdaptor.get_structure(ensure_cell(atoms)) for atoms in chunk]
        predictions = model.predict_structure(structures, task=task, batch_size=batch_size)
        if isinstance(predictions, dict):  # CHGNet returns a bare dict for a single structure
            predictions = [predictions]
        for offset, (atoms, pred) in enumerate(zip(chunk, predictions, strict=True)):
            i = start + offset
            n = len(atoms)
            energies[i] = float(np.asarray(pred["e"]).reshape(())) * (n if extensive else 1)
            forces.append(np.asarray(pred["f"], dtype=float).reshape(n, 3))
            if task == "efs" and periodic[i]:
                stress[i] = full_3x3_to_voigt_6_stress(np.asarray(pred["s"], dtype=float)) * units.GPa
        if progress is not None:
            progress.update(min(start + batch_size, n_frames))
    return energies, forces, stress


def evaluate_sevenn_batched(model, images, cutoff: float, batch_size: int = 16, compute_stress: bool = True,
                            progress: Progress | None = None, device: str = "cpu"):
    """Like :func:`evaluate_ase`, through SevenNet's own graph batching (as ``sevenn inference`` does).

    Each frame becomes a graph with ``sevenn.train.dataload.unlabeled_atoms_to_graph`` (the same graph
    its ASE calculator builds), ``batch_size`` graphs are merged by ``torch_geometric``'s ``Batch`` and
    the model runs once per batch in its batch mode (``set_is_batch_data(True)``, restored afterwards).
    Energies are totals in eV, forces eV/A, stress converted like ``SevenNetCalculator``: the model's
    (xx, yy, zz, xy, yz, zx) with the opposite sign becomes ASE's Voigt (xx, yy, zz, yz, xz, xy) in
    eV/A^3; NaN for frames that are not periodic in 3D (or without ``compute_stress``).
    """
    import sevenn._keys as KEY
    import torch
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.train.dataload import unlabeled_atoms_to_graph
    from torch_geometric.data import Batch

    n_frames = len(images)
    energies = np.full(n_frames, np.nan)
    forces: list[np.ndarray] = []
    stress = np.full((n_frames, 6), np.nan)
    model.set_is_batch_data(True)
    try:
        for start in range(0, n_frames, batch_size):
            chunk = images[start : start + batch_size]
            graphs = [AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, cutoff)) for atoms in chunk]
            batch = Batch.from_data_list(graphs).to(torch.device(device))
            output = model(batch)
            chunk_energies = output[KEY.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
            chunk_forces = output[KEY.PRED_FORCE].detach().cpu().numpy().astype(float)
            chunk_stress = None
            if compute_stress and KEY.PRED_STRESS in output:
                chunk_stress = (-output[KEY.PRED_STRESS]).detach().cpu().numpy().reshape(-1, 6)[:, [0, 1, 2, 4, 5, 3]]
            bounds = np.cumsum([0] + [len(atoms) for atoms in chunk])
            if chunk_energies.shape != (len(chunk),) or chunk_forces.shape != (bounds[-1], 3):
                raise RuntimeError(
                    f"SevenNet returned energies {chunk_energies.shape} and forces {chunk_forces.shape} for "
                    f"{len(chunk)} frames of {bounds[-1]} atoms"
                )
            for offset, atoms in enumerate(chunk):
                i = start + offset
                energies[i] = float(chunk_energies[offset])
                forces.append(chunk_forces[bounds[offset] : bounds[offset + 1]])
                if chunk_stress is not None and is_periodic_3d(atoms):
                    stress[i] = chunk_stress[offset]
            if progress is not None:
                progress.update(min(start + batch_size, n_frames))
    finally:
        model.set_is_batch_data(False)  # the ASE calculator that owns the model runs it frame by frame
    return energies, forces, stress


def evaluate_images(calc, family: str, mode: str, images, batch_size: int, compute_stress: bool,
                    device: str = "cpu", progress: Progress | None = None):
    """Energies, forces and stress of ``images`` in ``mode`` (``batched`` or ``ase``, as :func:`choose_mode` says)."""
    if mode == "batched" and family == "chgnet":
        return evaluate_chgnet_batched(calc.model, images, batch_size, compute_stress, progress)
    if mode == "batched" and family == "sevenn":
        return evaluate_sevenn_batched(
            calc.model, images, float(calc.cutoff), batch_size, compute_stress, progress, device=device
        )
    return evaluate_ase(calc, images, compute_stress, progress)



def choose_mode(requested: str, family: str, device: str) -> str:
    """The mode actually used.

    ``ase`` is always honoured; ``batched`` for a family without a batched path (MACE here) falls back
    to ``ase``. ``auto``: batched on an accelerator for CHGNet and SevenNet (one kernel launch per
    batch instead of per frame); on CPU batched only for the families in :data:`BATCHED_ON_CPU`
    (none), in batches of at most :data:`CPU_AUTO_BATCH_SIZE` (:func:`batch_size_for`): on CPU batches
    measured slower than the frame-by-frame loop (docs/benchmark.md, "Batched or not", generated by
    ``python -m benchmarks.evaluate_modes --write-docs``); the speed there comes from worker processes
    (:func:`plan_workers`), not from batches.
    """
    if requested == "ase" or family not in BATCHED_FAMILIES:
        return "ase"
    if requested == "batched":
        return "batched"
    on_cpu = str(device).startswith("cpu")
    return "batched" if not on_cpu or family in BATCHED_ON_CPU else "ase"


def batch_size_for(requested_mode: str, mode: str, device: str, batch_size: int) -> int:
    """Frames per batch: ``batch_size``, capped at :data:`CPU_AUTO_BATCH_SIZE` when ``auto`` chose batches on CPU
    (an explicit ``mode: batched`` keeps the batch size it was given); 1 for the ASE loop."""
    if mode != "batched":
        return 1
    if requested_mode == "auto" and str(device).startswith("cpu"):
        return min(int(batch_size), CPU_AUTO_BATCH_SIZE)
    return int(batch_size)

