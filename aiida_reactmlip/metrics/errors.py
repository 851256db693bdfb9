"""Error metrics of MLIP predictions against DFT labels (pure numpy).

Units: energies eV, per-atom energies eV/atom, forces eV/Å, stress eV/Å^3 (also given in GPa).
Raw total energies are never compared: see ``references`` for why. Every energy result
carries ``energy_reference``, a sentence saying which reference was used.
Every returned dict holds only plain ``float``/``int``/``str`` values (JSON-able, ready for an
AiiDA ``Dict``); a metric that cannot be computed is left out, never set to NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from ase import units
from ase.data import chemical_symbols

from .references import (
    _group_members,
    _train_mask,
    as_energies,
    composition_matrix,
    group_labels,
    paired_relative_energies,
)

__all__ = [
    "ENERGY_REFERENCES",
    "NoEnergyComparison",
    "COSINE_MIN_FORCE",
    "energy_metrics",
    "force_metrics",
    "stress_metrics",
    "compare",
]

ENERGY_REFERENCES = ("relative:min", "relative:mean", "elemental_fit")


class NoEnergyComparison(ValueError):
    """The frames leave no energy to compare under the chosen reference (every group has a single frame):
    a property of the data, not an error of the inputs; :func:`compare` turns it into ``energy_note``."""
#: DFT force norm (eV/Å) below which an atom has no meaningful direction for the cosine.
COSINE_MIN_FORCE = 1e-3


def _n_atoms_array(n_atoms, n_frames: int, numbers=None) -> np.ndarray:
    if n_atoms is None:
        if numbers is None:
            raise ValueError("n_atoms is required (or give numbers to derive it)")
        n_atoms = [len(n) for n in numbers]
    arr = np.asarray(n_atoms)
    if arr.ndim != 1 or arr.shape[0] != n_frames:
        raise ValueError(f"n_atoms has shape {arr.shape} but energies have shape ({n_frames},)")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError("n_atoms must hold whole numbers of atoms")
        arr = arr.astype(int)
    if np.any(arr <= 0):
        f = int(np.flatnonzero(arr <= 0)[0])
        raise ValueError(f"n_atoms must be positive; frame {f} has {arr[f]}")
    return arr


def _error_stats(err: np.ndarray, n_atoms: np.ndarray) -> dict:
    per_atom = err / n_atoms
    return {
        "energy_mae": float(np.mean(np.abs(err))),
        "energy_rmse": float(np.sqrt(np.mean(err**2))),
        "energy_max_abs_error": float(np.max(np.abs(err))),
        "energy_mae_per_atom": float(np.mean(np.abs(per_atom))),
        "energy_rmse_per_atom": float(np.sqrt(np.mean(per_atom**2))),
        "energy_max_abs_error_per_atom": float(np.max(np.abs(per_atom))),
    }


def _check_group_composition(members: dict, n_atoms: np.ndarray, numbers) -> None:
    counts = composition_matrix(numbers)[0] if numbers is not None else None
    if counts is not None and counts.shape[0] != n_atoms.size:
        raise ValueError(f"numbers has {counts.shape[0]} frames but energies have {n_atoms.size}")
    for g, idx in members.items():
        if np.any(n_atoms[idx] != n_atoms[idx[0]]) or (
            counts is not None and np.any(counts[idx] != counts[idx[0]])
        ):
            raise ValueError(
                f"group {g!r} mixes compositions (frames {idx.tolist()}, atoms {n_atoms[idx].tolist()}): "
                "energy differences between compositions are not comparable across DFT set-ups; "
                "give one group per composition, or use reference='elemental_fit'"
            )


def energy_metrics(
    dft_energies,
    pred_energies,
    n_atoms,
    groups=None,
    reference: str = "relative:min",
    train_mask=None,
    numbers: Sequence | None = None,
) -> dict:
    """Energy errors (eV, eV/atom) of predictions against DFT, never on raw totals.

    reference:
      ``"relative:min"``: within each group, both DFT and model energies are shifted by the
        energy of the SAME frame, the one with the lowest DFT energy. That reference frame has
        zero error by construction and is EXCLUDED from the statistics (it would dilute them);
        ``n_frames_compared`` = frames minus one per group.
      ``"relative:mean"``: each method shifted by its own group mean; all frames of groups with
        two or more frames are counted (a single-frame group has zero error by construction
        and is excluded).
      ``"elemental_fit"``: per-element reference energies (eV/atom) fitted by least squares,
        separately for DFT and model, on frames with ``train_mask`` True; statistics over the
        other frames (held-out). Without ``train_mask``, fit and statistics use all frames
        (in-sample, said so in ``energy_reference``). Needs ``numbers`` (per frame: atomic
        numbers, symbols or Atoms). ``groups`` plays no role.
    groups: (F,) labels, one composition per group (checked with ``n_atoms``/``numbers``).
    Per-atom errors divide each frame's error by its own ``n_atoms``.

    Returns ``energy_reference`` (sentence), ``energy_reference_key``, ``energy_mae``,
    ``energy_rmse``, ``energy_max_abs_error`` (eV), the same with ``_per_atom`` (eV/atom),
    ``n_frames_compared``, ``n_frames_total`` and, per reference, ``n_groups`` or
    ``n_frames_train`` plus ``energy_elemental_offset_<El>`` (model minus DFT reference, eV/atom,
    only where the fit determines it).
    """
    dft = as_energies(dft_energies, "dft energies")
    pred = as_energies(pred_energies, "predicted energies")
    if dft.shape != pred.shape:
        raise ValueError(f"dft energies have shape {dft.shape} but predicted energies {pred.shape}")
    nat = _n_atoms_array(n_atoms, dft.size, numbers)
    if reference not in ENERGY_REFERENCES:
        raise ValueError(f"reference must be one of {ENERGY_REFERENCES}, got {reference!r}")

    if reference == "elemental_fit":
        return _elemental_fit_metrics(dft, pred, nat, numbers, train_mask)

    if train_mask is not None:
        raise ValueError(
            f"train_mask applies only to reference='elemental_fit' (nothing is fitted for {reference!r}); "
            "select the frames to evaluate before calling"
        )
    labels = group_labels(groups, dft.size)
    members = _group_members(labels)
    _check_group_composition(members, nat, numbers)
    mode = reference.split(":", 1)[1]
    dft_rel, pred_rel, ref_index = paired_relative_energies(dft, pred, labels, mode)
    if mode == "min":
        keep = np.ones(dft.size, dtype=bool)
        keep[list(ref_index.values())] = False
        text = (
            f"relative to the lowest-DFT-energy frame of each group (the same frame shifts DFT and model); "
            f"{len(members)} group(s), reference frames excluded from the statistics"
        )
    else:
        keep = np.zeros(dft.size, dtype=bool)
        for idx in members.values():
            keep[idx] = idx.size > 1
        text = (
            f"relative to each method's own group mean energy; {len(members)} group(s), "
            "single-frame groups excluded from the statistics"
        )
    if not keep.any():
        raise NoEnergyComparison(
            f"no energy error: every group has one frame only, and relative energies ({reference}) need at least "
            "two frames per group, so there is nothing to compare them with; forces are compared all the same. "
            "To get an energy error, give frames of one composition the same `group` (a reaction's states, a "
            "scan), add frames, or use the energy reference 'elemental_fit'"
        )
    out = {"energy_reference": text, "energy_reference_key": reference}
    out.update(_error_stats(pred_rel[keep] - dft_rel[keep], nat[keep]))
    out.update(n_frames_compared=int(keep.sum()), n_frames_total=int(dft.size), n_groups=len(members))
    return out


def _elemental_fit_metrics(dft, pred, nat, numbers, train_mask) -> dict:
    if numbers is None:
        raise ValueError(
            "reference='elemental_fit' needs numbers (per frame atomic numbers, symbols or Atoms)"
        )
    counts, elements = composition_matrix(numbers)
    if counts.shape[0] != dft.size:
        raise ValueError(f"numbers has {counts.shape[0]} frames but energies have shape {dft.shape}")
    bad = np.flatnonzero(counts.sum(axis=1) != nat)
    if bad.size:
        f = int(bad[0])
        raise ValueError(f"frame {f}: n_atoms says {nat[f]} but numbers has {int(counts[f].sum())} atoms")
    in_sample = train_mask is None
    mask = _train_mask(train_mask, dft.size)
    test = np.ones(dft.size, dtype=bool) if in_sample else ~mask
    if not test.any():
        raise ValueError("train_mask selects every frame: no held-out frame left to evaluate")
    a = counts[mask]
    # Every evaluated composition must lie in the span of the training compositions, otherwise
    # its reference energy is not determined by the fit.
    projector = np.linalg.pinv(a) @ a
    for f in np.flatnonzero(test):
        if np.linalg.norm(counts[f] - counts[f] @ projector) > 1e-8 * max(1.0, counts[f].sum()):
            formula = "".join(
                f"{chemical_symbols[z]}{int(c) if c != 1 else ''}" for z, c in zip(elements, counts[f]) if c
            )
            raise ValueError(
                f"frame {int(f)} ({formula}): its composition is not a combination of the training "
                "compositions, so the per-element references do not determine its energy"
            )
    coef = np.linalg.pinv(a)
    mu_dft = coef @ dft[mask]
    mu_pred = coef @ pred[mask]
    err = (pred - counts @ mu_pred) - (dft - counts @ mu_dft)
    n_train = int(mask.sum())
    if in_sample:
        text = (
            f"after per-element reference energies fitted by least squares, separately for DFT and model, "
            f"on all {dft.size} frames (in-sample: the same frames are fitted and evaluated)"
        )
    else:
        text = (
            f"after per-element reference energies fitted by least squares, separately for DFT and model, "
            f"on {n_train} training frames; evaluated on {int(test.sum())} held-out frames"
        )
    out = {"energy_reference": text, "energy_reference_key": "elemental_fit"}
    out.update(_error_stats(err[test], nat[test]))
    out.update(n_frames_compared=int(test.sum()), n_frames_total=int(dft.size), n_frames_train=n_train)
    present = a.sum(axis=0) > 0
    if np.linalg.matrix_rank(a[:, present]) == int(present.sum()):
        for z, p, d in zip(elements, present, mu_pred - mu_dft):
            if p:
                out[f"energy_elemental_offset_{chemical_symbols[z]}"] = float(d)
    return out


def _forces_array(forces, name: str, check_nan: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(N,3) forces and the frame index of each row from (N,3), (F,n,3) or a list of (n_i,3)."""
    per_frame = (
        isinstance(forces, Sequence)
        and not isinstance(forces, np.ndarray)
        and len(forces) > 0
        and all(np.ndim(f) == 2 for f in forces)
    )
    if not per_frame:
        arr = np.asarray(forces, dtype=float)
        if arr.ndim == 3 and arr.shape[2] == 3:
            frame = np.repeat(np.arange(arr.shape[0]), arr.shape[1])
            arr = arr.reshape(-1, 3)
        elif arr.ndim == 2 and arr.shape[1] == 3:
            frame = None
        else:
            raise ValueError(f"{name} must have shape (N, 3) or (F, n, 3), got {arr.shape}")
    else:
        parts = [np.asarray(f, dtype=float) for f in forces]
        for k, p in enumerate(parts):
            if p.ndim != 2 or p.shape[1] != 3:
                raise ValueError(f"{name} of frame {k} must have shape (n, 3), got {p.shape}")
        arr = np.concatenate(parts) if parts else np.zeros((0, 3))
        frame = np.repeat(np.arange(len(parts)), [p.shape[0] for p in parts])
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if check_nan:
        bad = np.flatnonzero(~np.all(np.isfinite(arr), axis=1))
        if bad.size:
            where = f"atom row {int(bad[0])}"
            if frame is not None:
                f = int(frame[bad[0]])
                where += f" (frame {f}, atom {int(bad[0] - np.searchsorted(frame, f))})"
            raise ValueError(f"{name} are not finite (NaN or inf) at {where}; {bad.size} row(s) affected")
    return arr, frame


def force_metrics(dft_forces, pred_forces) -> dict:
    """Force errors in eV/Å.

    Forces as (N, 3), (F, n, 3) or a list of per-frame (n_i, 3) arrays; all atoms are counted.
    Returns ``force_mae`` and ``force_rmse`` (over the 3N components), ``force_max_abs_error``
    (largest component error), ``force_norm_mae`` (mean | |F_dft| - |F_pred| |),
    ``force_cosine_similarity`` (mean cosine between DFT and predicted vectors over atoms
    whose DFT force norm exceeds ``COSINE_MIN_FORCE`` = 1e-3 eV/Å; a zero predicted force counts
    as cosine 0; left out when no atom qualifies), ``force_cosine_n_atoms`` and
    ``n_atoms_compared``.
    """
    dft, _ = _forces_array(dft_forces, "dft forces")
    pred, _ = _forces_array(pred_forces, "predicted forces")
    if dft.shape != pred.shape:
        raise ValueError(f"dft forces have shape {dft.shape} but predicted forces {pred.shape}")
    diff = pred - dft
    norm_dft = np.linalg.norm(dft, axis=1)
    norm_pred = np.linalg.norm(pred, axis=1)
    out = {
        "force_mae": float(np.mean(np.abs(diff))),
        "force_rmse": float(np.sqrt(np.mean(diff**2))),
        "force_max_abs_error": float(np.max(np.abs(diff))),
        "force_norm_mae": float(np.mean(np.abs(norm_dft - norm_pred))),
    }
    sel = norm_dft > COSINE_MIN_FORCE
    if sel.any():
        dots = np.sum(dft[sel] * pred[sel], axis=1)
        denom = norm_dft[sel] * norm_pred[sel]
        cos = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        out["force_cosine_similarity"] = float(np.mean(np.clip(cos, -1.0, 1.0)))
    out["force_cosine_n_atoms"] = int(sel.sum())
    out["n_atoms_compared"] = int(dft.shape[0])
    return out


def _stress_array(stress, name: str) -> np.ndarray:
    arr = np.asarray(stress, dtype=float)
    if arr.ndim == 3 and arr.shape[1:] == (3, 3):
        arr = arr[:, [0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    if arr.ndim != 2 or arr.shape[1] != 6:
        raise ValueError(
            f"{name} must have shape (F, 6) (Voigt xx yy zz yz xz xy) or (F, 3, 3), got {arr.shape}"
        )
    return arr


def stress_metrics(dft_stress, pred_stress) -> dict:
    """Stress errors over the 6 Voigt components, in eV/Å^3 and in GPa.

    Stresses (F, 6) Voigt (xx, yy, zz, yz, xz, xy) or (F, 3, 3), eV/Å^3, same sign convention
    for both (ASE's). Frames whose DFT row holds a NaN (stress not computed, e.g. molecules)
    are skipped and counted out of ``n_stress_frames_compared``; a NaN prediction where DFT has
    a stress is a ValueError. Returns ``stress_mae``, ``stress_rmse``, ``stress_max_abs_error``
    (eV/Å^3), ``stress_mae_gpa``, ``stress_rmse_gpa``, ``stress_max_abs_error_gpa`` and
    ``n_stress_frames_compared``; only the count when no frame has a DFT stress.
    """
    dft = _stress_array(dft_stress, "dft stress")
    pred = _stress_array(pred_stress, "predicted stress")
    if dft.shape != pred.shape:
        raise ValueError(f"dft stress has shape {dft.shape} but predicted stress {pred.shape}")
    keep = np.all(np.isfinite(dft), axis=1)
    bad = np.flatnonzero(keep & ~np.all(np.isfinite(pred), axis=1))
    if bad.size:
        raise ValueError(f"predicted stress is not finite for frame {int(bad[0])}, which has a DFT stress")
    out = {"n_stress_frames_compared": int(keep.sum())}
    if not keep.any():
        return out
    diff = pred[keep] - dft[keep]
    mae = float(np.mean(np.abs(diff)))
    rmse = float(np.sqrt(np.mean(diff**2)))
    mx = float(np.max(np.abs(diff)))
    out.update(
        stress_mae=mae,
        stress_rmse=rmse,
        stress_max_abs_error=mx,
        stress_mae_gpa=mae / units.GPa,
        stress_rmse_gpa=rmse / units.GPa,
        stress_max_abs_error_gpa=mx / units.GPa,
    )
    return out


def compare(
    dft: Mapping,
    pred: Mapping,
    n_atoms,
    groups=None,
    reference: str = "relative:min",
    *,
    numbers: Sequence | None = None,
    train_mask=None,
) -> dict:
    """All metrics of predictions against DFT labels as one flat JSON-able dict.

    ``dft`` and ``pred``: mappings with ``"energies"`` (F,) eV, ``"forces"`` (see
    ``force_metrics``) eV/Å and optionally ``"stress"`` (F, 6) eV/Å^3. A property present in
    ``dft`` must be present in ``pred`` (ValueError otherwise); one only in ``pred`` has no
    label and is not compared. ``n_atoms`` (F,) atoms per frame (may be None if ``numbers``
    is given); forces must have ``sum(n_atoms)`` rows. ``groups``, ``reference``, ``numbers``
    and ``train_mask`` go to ``energy_metrics``. Forces and stress are compared on all frames. When the
    frames leave no energy to compare (every group a single frame: :class:`NoEnergyComparison`), the result
    has no energy statistics but ``energy_note`` saying why and what to do, ``n_frames_compared`` 0.
    """
    known = ("energies", "forces", "stress")
    unknown = sorted(set(dft) - set(known))
    if unknown:
        raise ValueError(f"unknown DFT label(s) {unknown}; expected keys among {list(known)}")
    missing = [k for k in known if k in dft and dft[k] is not None and pred.get(k) is None]
    if missing:
        raise ValueError(f"predictions lack {missing}, which the DFT labels have")
    if not any(dft.get(k) is not None for k in known):
        raise ValueError(f"no DFT label to compare: expected keys among {list(known)}")
    out: dict = {}
    nat = None
    if dft.get("energies") is not None:
        try:
            out.update(
                energy_metrics(
                    dft["energies"],
                    pred["energies"],
                    n_atoms,
                    groups,
                    reference,
                    train_mask=train_mask,
                    numbers=numbers,
                )
            )
        except NoEnergyComparison as exception:  # forces and stress are still compared
            out.update(energy_reference=f"{reference}: no energy compared", energy_reference_key=reference,
                       energy_note=str(exception), n_frames_compared=0,
                       n_frames_total=len(np.asarray(dft["energies"])))
        nat = _n_atoms_array(n_atoms, len(np.asarray(dft["energies"])), numbers)
    elif n_atoms is not None or numbers is not None:
        n_frames = len(n_atoms) if n_atoms is not None else len(numbers)
        nat = _n_atoms_array(n_atoms, n_frames, numbers)
    if dft.get("forces") is not None:
        rows, frame = _forces_array(dft["forces"], "dft forces", check_nan=False)
        if nat is not None:
            if rows.shape[0] != int(nat.sum()):
                raise ValueError(
                    f"dft forces have {rows.shape[0]} atom rows but n_atoms sums to {int(nat.sum())}"
                )
            if frame is not None and np.any(np.bincount(frame, minlength=nat.size) != nat):
                raise ValueError("dft forces per frame do not match n_atoms frame by frame")
        out.update(force_metrics(dft["forces"], pred["forces"]))
    if dft.get("stress") is not None:
        if nat is not None and len(np.asarray(dft["stress"])) != nat.size:
            n_stress = len(np.asarray(dft["stress"]))
            raise ValueError(f"dft stress has {n_stress} frames but n_atoms has {nat.size}")
        out.update(stress_metrics(dft["stress"], pred["stress"]))
    return out
