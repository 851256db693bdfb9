"""Energy references that make MLIP and DFT energies comparable.

Universal MLIPs are trained on other DFT set-ups (VASP, other pseudopotentials), so their
absolute total energies differ from ours by an arbitrary, composition-dependent offset.
Only two kinds of quantities are compared here:

- energy *differences* within a group of frames of one composition (``relative_energies``),
  where DFT and model are shifted by the energy of the SAME frame (or by their own group mean);
- energies after a per-element reference fit (``fit_elemental_references``), which removes
  any offset linear in the element counts.

Pure numpy/ASE. Energies in eV, per-element references in eV/atom.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

__all__ = [
    "RELATIVE_REFERENCES",
    "as_energies",
    "group_labels",
    "reference_indices",
    "relative_energies",
    "paired_relative_energies",
    "composition_matrix",
    "fit_elemental_references",
    "apply_elemental_references",
]

RELATIVE_REFERENCES = ("min", "mean")


def as_energies(energies, name: str = "energies", allow_nan: bool = False) -> np.ndarray:
    """Return ``energies`` as a 1-D float array (eV); raise ValueError on bad shape or NaN."""
    arr = np.asarray(energies, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-frame energies, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not allow_nan:
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(
                f"{name} is not finite (NaN or inf) for frame {int(bad[0])}"
                + (f" and {bad.size - 1} other frame(s): {bad.tolist()}" if bad.size > 1 else "")
            )
    return arr


def group_labels(groups, n_frames: int) -> np.ndarray:
    """Per-frame group labels as an object array; ``None`` means one group (label 0)."""
    if groups is None:
        return np.zeros(n_frames, dtype=object)
    if isinstance(groups, (str, bytes)):
        raise ValueError("groups must be a sequence with one label per frame, not a string")
    labels = np.empty(len(groups), dtype=object)
    for k, g in enumerate(groups):
        if not isinstance(g, Hashable):
            raise ValueError(f"group label of frame {k} is not hashable: {g!r}")
        labels[k] = g.item() if isinstance(g, np.generic) else g
    if labels.shape != (n_frames,):
        raise ValueError(f"groups has {labels.shape[0]} labels but there are {n_frames} frames")
    return labels


def _group_members(labels: np.ndarray) -> dict:
    """Map each group label (in order of first appearance) to the indices of its frames."""
    members: dict = {}
    for k, g in enumerate(labels):
        members.setdefault(g, []).append(k)
    return {g: np.asarray(idx, dtype=int) for g, idx in members.items()}


def reference_indices(energies, groups=None) -> dict:
    """Index of the lowest-energy frame of each group: ``{group_label: frame_index}``.

    Compute this from the DFT energies and pass it to ``relative_energies`` for BOTH the DFT
    and the model energies, so both are shifted by the energy of the same frame. Ties go to the
    first frame. With ``groups=None`` the single group has label ``0``.
    """
    e = as_energies(energies)
    members = _group_members(group_labels(groups, e.size))
    return {g: int(idx[np.argmin(e[idx])]) for g, idx in members.items()}


def relative_energies(energies, groups=None, reference: str = "min", reference_index=None) -> np.ndarray:
    """Energies (eV) relative to a reference within each group of frames.

    Parameters
    ----------
    energies: (F,) total energies in eV.
    groups: (F,) labels; frames of one composition/system share a label. ``None``: one group.
    reference: ``"min"`` subtracts the energy of the group's reference frame;
        ``"mean"`` subtracts the group mean of ``energies`` itself.
    reference_index: for ``"min"``: ``{group_label: frame_index}`` (an ``int`` is accepted when
        ``groups`` is None), normally ``reference_indices(dft_energies, groups)``. If omitted, the
        lowest-energy frame of ``energies`` itself is used: right for DFT energies, WRONG for
        predictions (the model's minimum may be another frame); use
        ``paired_relative_energies`` to get both consistently.
    """
    e = as_energies(energies)
    labels = group_labels(groups, e.size)
    members = _group_members(labels)
    out = np.empty_like(e)
    if reference == "mean":
        if reference_index is not None:
            raise ValueError("reference_index only applies to reference='min'")
        for idx in members.values():
            out[idx] = e[idx] - e[idx].mean()
        return out
    if reference != "min":
        raise ValueError(f"reference must be one of {RELATIVE_REFERENCES}, got {reference!r}")
    if reference_index is None:
        reference_index = reference_indices(e, groups)
    elif not isinstance(reference_index, Mapping):
        if groups is not None and len(members) != 1:
            raise ValueError("with several groups, reference_index must be a {group: frame_index} mapping")
        reference_index = {next(iter(members)): int(reference_index)}
    for g, idx in members.items():
        if g not in reference_index:
            raise ValueError(f"reference_index has no frame for group {g!r}")
        ref = int(reference_index[g])
        if ref not in idx:
            raise ValueError(f"reference frame {ref} of group {g!r} is not a member of that group")
        out[idx] = e[idx] - e[ref]
    return out


def paired_relative_energies(dft_energies, pred_energies, groups=None, reference: str = "min"):
    """DFT and predicted energies (eV) relative to the same reference, group by group.

    ``"min"``: both shifted by the energy of the frame with the lowest DFT energy in each group.
    ``"mean"``: each method shifted by its own group mean.
    Returns ``(dft_relative, pred_relative, reference_index)``; ``reference_index`` is the
    ``{group: frame}`` mapping for ``"min"`` and None for ``"mean"``.
    """
    dft = as_energies(dft_energies, "dft energies")
    pred = as_energies(pred_energies, "predicted energies")
    if dft.shape != pred.shape:
        raise ValueError(f"dft energies have shape {dft.shape} but predicted energies {pred.shape}")
    if reference == "min":
        ref = reference_indices(dft, groups)
        return (
            relative_energies(dft, groups, "min", ref),
            relative_energies(pred, groups, "min", ref),
            ref,
        )
    if reference == "mean":
        return relative_energies(dft, groups, "mean"), relative_energies(pred, groups, "mean"), None
    raise ValueError(f"reference must be one of {RELATIVE_REFERENCES}, got {reference!r}")


def _to_numbers(frame) -> np.ndarray:
    if hasattr(frame, "get_atomic_numbers"):
        return np.asarray(frame.get_atomic_numbers(), dtype=int)
    items = list(frame)
    if items and all(isinstance(x, str) for x in items):
        try:
            return np.array([atomic_numbers[x] for x in items], dtype=int)
        except KeyError as exc:
            raise ValueError(f"unknown chemical symbol {exc.args[0]!r}") from None
    arr = np.asarray(items)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"atomic numbers must be a 1-D integer sequence, got {arr!r}")
    return arr.astype(int)


def composition_matrix(numbers_per_frame: Sequence) -> tuple[np.ndarray, list[int]]:
    """Element counts per frame: ``(C, elements)`` with ``C[f, k]`` atoms of ``elements[k]``.

    ``numbers_per_frame``: per frame, atomic numbers, chemical symbols or an ``ase.Atoms``.
    """
    numbers = [_to_numbers(f) for f in numbers_per_frame]
    if not numbers:
        raise ValueError("numbers_per_frame is empty")
    elements = sorted({int(z) for n in numbers for z in n})
    col = {z: k for k, z in enumerate(elements)}
    counts = np.zeros((len(numbers), len(elements)))
    for f, n in enumerate(numbers):
        for z in n:
            counts[f, col[int(z)]] += 1
    return counts, elements


def _train_mask(train_mask, n_frames: int) -> np.ndarray:
    if train_mask is None:
        return np.ones(n_frames, dtype=bool)
    mask = np.asarray(train_mask)
    if mask.dtype != bool:
        raise ValueError(f"train_mask must be a boolean array, got dtype {mask.dtype}")
    if mask.shape != (n_frames,):
        raise ValueError(f"train_mask has shape {mask.shape} but there are {n_frames} frames")
    if not mask.any():
        raise ValueError("train_mask selects no frame")
    return mask


def fit_elemental_references(numbers_per_frame: Sequence, energies, train_mask=None) -> dict[str, float]:
    """Least-squares per-element reference energies (eV/atom), fitted on the training frames.

    Solves ``energies[f] ~= sum_Z count[f, Z] * mu[Z]`` over frames with ``train_mask`` True
    (all frames if None). Returns ``{chemical_symbol: mu}`` in eV/atom. When the training
    compositions do not determine every element (e.g. all frames CO: only ``mu_C + mu_O`` is
    fixed), the minimum-norm solution is returned; sums over compositions spanned by the
    training frames are still exact.
    """
    e = as_energies(energies)
    counts, elements = composition_matrix(numbers_per_frame)
    if counts.shape[0] != e.size:
        raise ValueError(f"numbers_per_frame has {counts.shape[0]} frames but energies has shape {e.shape}")
    mask = _train_mask(train_mask, e.size)
    a = counts[mask]
    present = a.sum(axis=0) > 0
    mu = np.zeros(len(elements))
    mu[present] = np.linalg.lstsq(a[:, present], e[mask], rcond=None)[0]
    # Elements absent from the training split get no reference: apply_elemental_references
    # refuses frames that contain them instead of inventing a value.
    return {chemical_symbols[z]: float(m) for z, m, p in zip(elements, mu, present) if p}


def apply_elemental_references(numbers_per_frame: Sequence, energies, references: Mapping) -> np.ndarray:
    """Energies (eV) minus the sum of per-element references (eV/atom) of each frame.

    ``references``: ``{symbol or atomic number: eV/atom}``. An element without a reference is
    a ValueError naming it and the first frame that contains it.
    """
    e = as_energies(energies)
    counts, elements = composition_matrix(numbers_per_frame)
    if counts.shape[0] != e.size:
        raise ValueError(f"numbers_per_frame has {counts.shape[0]} frames but energies has shape {e.shape}")
    refs = {}
    for key, value in references.items():
        z = atomic_numbers[key] if isinstance(key, str) else int(key)
        refs[z] = float(value)
    mu = np.zeros(len(elements))
    for k, z in enumerate(elements):
        if z not in refs:
            frame = int(np.flatnonzero(counts[:, k])[0])
            raise ValueError(
                f"no reference energy for element {chemical_symbols[z]} (first in frame {frame}); "
                f"references cover {sorted(chemical_symbols[z] for z in refs)}"
            )
        mu[k] = refs[z]
    return e - counts @ mu
