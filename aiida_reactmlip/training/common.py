"""Helpers shared by the fine-tuning family modules (pure: ASE Atoms / numpy / torch; no aiida).

- :func:`read_labels`: DFT labels of ASE frames as arrays (energy eV, forces eV/Å, stress eV/Å^3 Voigt),
  checked before any work starts (missing forces, non-finite values, wrong shapes).
- :func:`check_model_elements`: every element of the frames is known to the base model.
- :func:`fit_elemental_shift`: per-element energy shifts (eV/atom) that move a model onto the energy
  reference of the labels (least squares, minimum norm).
- :func:`validation_errors`: energy MAE (eV/atom) and force MAE (eV/Å) of an ASE calculator on labelled frames.
- :func:`seed_everything`, :func:`torch_threads`, :func:`apply_freeze`, :func:`save_torch_deterministic`,
  :func:`check_common_hyperparameters`, :class:`TrainingLog`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import pathlib
import random
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from aiida_reactmlip.hashing import sha256_file
from aiida_reactmlip.models.errors import ElementNotCoveredError

from .errors import TrainingError
from .hyperparameters import check_common_hyperparameters

__all__ = [
    "FrameLabels",
    "TrainingLog",
    "UnknownElementError",
    "apply_freeze",
    "check_common_hyperparameters",
    "check_model_elements",
    "fit_elemental_shift",
    "is_periodic_3d",
    "read_labels",
    "save_torch_deterministic",
    "seed_everything",
    "sha256_file",
    "torch_threads",
    "validation_errors",
]


class UnknownElementError(TrainingError, ElementNotCoveredError):
    """The training or validation frames hold an element the base model does not know."""


@dataclasses.dataclass
class FrameLabels:
    """DFT labels of one frame: ``energy`` (eV, total), ``forces`` (n, 3) eV/Å, ``stress`` Voigt (6,) eV/Å^3
    in ASE's sign convention (xx, yy, zz, yz, xz, xy) or ``None``; ``numbers`` atomic numbers."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    numbers: np.ndarray

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)


def is_periodic_3d(atoms) -> bool:
    """True if ``atoms`` is periodic along all three cell vectors with a non-degenerate cell."""
    return bool(np.all(atoms.pbc)) and abs(float(np.linalg.det(np.asarray(atoms.cell)))) > 1e-8


def _result(atoms, name: str):
    """A label of ``atoms`` from its calculator (``None`` when it has none)."""
    calc = atoms.calc
    if calc is None:
        return None
    results = getattr(calc, "results", {}) or {}
    if name in results and results[name] is not None:
        return results[name]
    getter = {"energy": atoms.get_potential_energy, "forces": atoms.get_forces, "stress": atoms.get_stress}[name]
    try:
        return getter()
    except (NotImplementedError, RuntimeError, ValueError):  # e.g. ASE's PropertyNotImplementedError
        return None


def read_labels(images: Sequence, role: str = "training") -> list[FrameLabels]:
    """Labels of ``images`` (ASE Atoms with a calculator, e.g. SinglePointCalculator), checked.

    Raises :class:`TrainingError` naming the frame when a frame has no energy, no forces, forces of the
    wrong shape, or a non-finite energy/force/stress.  Stress is optional per frame.
    """
    from ase.stress import full_3x3_to_voigt_6_stress

    labels = []
    for index, atoms in enumerate(images):
        where = f"{role} frame {index} ({atoms.get_chemical_formula()})"
        if len(atoms) == 0:
            raise TrainingError(f"{where} has no atoms")
        energy = _result(atoms, "energy")
        if energy is None:
            raise TrainingError(f"{where} has no energy label: every frame needs a DFT energy (eV)")
        forces = _result(atoms, "forces")
        if forces is None:
            raise TrainingError(
                f"{where} has no forces: fine-tuning needs DFT forces (eV/Å) for every frame; "
                "relabel it with forces (tprnfor in pw.x) or leave it out"
            )
        forces = np.array(forces, dtype=float)
        if forces.shape != (len(atoms), 3):
            raise TrainingError(f"{where} has forces of shape {forces.shape}, expected ({len(atoms)}, 3)")
        energy = float(np.asarray(energy, dtype=float).reshape(()))
        if not math.isfinite(energy):
            raise TrainingError(f"{where} has a non-finite energy ({energy}); remove or relabel it")
        if not np.all(np.isfinite(forces)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(forces), axis=1))[0])
            raise TrainingError(f"{where} has non-finite forces (atom {bad}); remove or relabel it")
        stress = _result(atoms, "stress")
        if stress is not None:
            stress = np.array(stress, dtype=float)
            if stress.shape == (3, 3):
                stress = full_3x3_to_voigt_6_stress(stress)
            if stress.shape != (6,):
                raise TrainingError(f"{where} has stress of shape {stress.shape}, expected (6,) or (3, 3)")
            if not np.all(np.isfinite(stress)):
                raise TrainingError(f"{where} has a non-finite stress; remove or relabel it")
        labels.append(FrameLabels(energy, forces, stress, np.asarray(atoms.numbers, dtype=int).copy()))
    return labels


def check_model_elements(model_label: str, covered: Iterable[str], images_by_role: Mapping[str, Sequence]) -> None:
    """Raise :class:`UnknownElementError` naming every element of the frames that ``covered`` lacks."""
    from ase.data import atomic_numbers

    covered = set(covered)
    missing: dict[str, list[str]] = {}
    for role, images in images_by_role.items():
        for atoms in images:
            for symbol in set(atoms.get_chemical_symbols()) - covered:
                missing.setdefault(symbol, [])
                if role not in missing[symbol]:
                    missing[symbol].append(role)
    if missing:
        names = sorted(missing, key=lambda s: atomic_numbers.get(s, 10_000))
        where = "; ".join(f"{s} (in the {' and '.join(missing[s])} frames)" for s in names)
        raise UnknownElementError(
            f"the base model {model_label} does not know element(s) {', '.join(names)}: {where}. "
            f"It was trained on {len(covered)} elements; fine-tuning cannot add an element to it. "
            "Use a base model that covers them (or train a MACE model from scratch).",
            model=model_label,
            elements=tuple(names),
        )


def composition_counts(numbers_per_frame: Sequence[Sequence[int]]) -> tuple[np.ndarray, list[int]]:
    """(frames x elements) matrix of atom counts and the atomic numbers of its columns."""
    elements = sorted({int(z) for numbers in numbers_per_frame for z in numbers})
    column = {z: i for i, z in enumerate(elements)}
    counts = np.zeros((len(numbers_per_frame), len(elements)))
    for row, numbers in enumerate(numbers_per_frame):
        for z in numbers:
            counts[row, column[int(z)]] += 1
    return counts, elements


def fit_elemental_shift(numbers_per_frame: Sequence[Sequence[int]], residuals: Sequence[float]) -> dict[int, float]:
    """Per-element energies δ_Z (eV/atom) minimising Σ_i (Σ_Z n_iZ δ_Z - r_i)^2, minimum-norm solution.

    ``residuals`` r_i: label minus model total energy (eV) per frame.  Adding δ_Z to a model's elemental
    reference energies removes the part of its error that is a change of energy reference (another
    DFT code or pseudopotentials).  When the frames do not determine every δ_Z (e.g. all frames share one
    composition), the minimum-norm solution is taken; any such choice cancels in energies that compare
    frames of balanced composition (relative, reaction, adsorption energies).
    """
    counts, elements = composition_counts(numbers_per_frame)
    solution, *_ = np.linalg.lstsq(counts, np.asarray(residuals, dtype=float), rcond=None)
    return {z: float(d) for z, d in zip(elements, solution, strict=True)}


def validation_errors(calculator, images: Sequence, labels: Sequence[FrameLabels]) -> dict[str, float]:
    """Errors of ``calculator`` on labelled frames.

    Returns ``energy_mae`` (mean over frames of |E_model - E_label| / n_atoms, eV/atom: raw total energies,
    so they include any offset of energy reference) and ``force_mae`` (mean absolute error over all force
    components of all atoms, eV/Å, as ``metrics.errors.force_metrics``).  Cached results are reset before
    each frame, so the calculator may wrap a model whose weights changed since the last call.
    """
    energy_errors, force_diffs = [], []
    for atoms, label in zip(images, labels, strict=True):
        frame = atoms.copy()
        frame.calc = calculator
        calculator.reset()
        energy = float(frame.get_potential_energy())
        forces = np.asarray(frame.get_forces(), dtype=float)
        energy_errors.append(abs(energy - label.energy) / label.n_atoms)
        force_diffs.append(np.abs(forces - label.forces).ravel())
    return {
        "energy_mae": float(np.mean(energy_errors)),
        "force_mae": float(np.mean(np.concatenate(force_diffs))),
    }


def predict_energies(calculator, images: Sequence) -> np.ndarray:
    """Total energies (eV) of ``images`` from ``calculator`` (fresh calculation per frame)."""
    out = []
    for atoms in images:
        frame = atoms.copy()
        frame.calc = calculator
        calculator.reset()
        out.append(float(frame.get_potential_energy()))
    return np.asarray(out)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextlib.contextmanager
def torch_threads(num_threads: int):
    """Run the block with ``torch.set_num_threads(num_threads)`` (0: leave torch's setting); restored after."""
    import torch

    previous = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        if num_threads:
            torch.set_num_threads(previous)


def apply_freeze(model, freeze, presets: Mapping[str, Sequence[str]]) -> list[str]:
    """Freeze (``requires_grad = False``) the parameters of ``model`` selected by ``freeze``.

    ``freeze``: ``"none"``, the name of a preset (a list of parameter-name prefixes), or a list of
    parameter-name prefixes (a string with commas is split).  Returns the names of the frozen parameters.
    A prefix that matches no parameter raises :class:`TrainingError` listing the model's top-level modules.
    """
    if freeze is None or freeze == "none" or freeze == [] or freeze is False:
        return []
    if isinstance(freeze, str):
        prefixes = presets[freeze] if freeze in presets else [p.strip() for p in freeze.split(",") if p.strip()]
    else:
        prefixes = [str(p) for p in freeze]
    names = [name for name, _ in model.named_parameters()]
    top = sorted({name.split(".")[0] for name in names})
    for prefix in prefixes:
        if not any(name == prefix or name.startswith(prefix.rstrip(".") + ".") for name in names):
            raise TrainingError(
                f"freeze: {prefix!r} matches no parameter of the model; give 'none', one of "
                f"{sorted(presets)}, or parameter-name prefixes such as {', '.join(top)}"
            )
    frozen = []
    for name, param in model.named_parameters():
        if any(name == p or name.startswith(p.rstrip(".") + ".") for p in prefixes):
            param.requires_grad = False
            frozen.append(name)
    if not any(p.requires_grad for p in model.parameters()):
        raise TrainingError(f"freeze {freeze!r} leaves no trainable parameter")
    return frozen


def save_torch_deterministic(obj, path) -> pathlib.Path:
    """``torch.save`` ``obj`` so that the bytes depend only on ``obj``, not on the file name.

    torch names the zip archive inside the file after the file's stem; saving through an in-memory buffer
    gives the fixed name ``archive``, so equal objects give equal sha256 whatever the file is called.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    path = pathlib.Path(path)
    path.write_bytes(buffer.getvalue())
    return path


class TrainingLog:
    """A plain-text training log in ``workdir``; :meth:`capture` also sends the block's stdout/stderr there."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self._handle = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def write(self, line: str) -> None:
        self._handle.write(line.rstrip("\n") + "\n")
        self._handle.flush()

    @contextlib.contextmanager
    def capture(self):
        with contextlib.redirect_stdout(self._handle), contextlib.redirect_stderr(self._handle):
            yield
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
