"""Diatomic curves of a model and their physical-sanity metrics (pure ASE/numpy).

:func:`diatomic_curve` puts two atoms alone in space (``pbc=False``; or in a large periodic box
for a model that needs one) and records the energy and the radial force along the separation.
:func:`curve_metrics` reads a curve (a model's or any other) and returns where its minimum is,
how deep the well is, how smooth the curve is, whether it repels at short range and whether the
forces are the derivative of the energy. Lengths in Å, energies in eV, forces in eV/Å.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from ase import Atoms

from .bonds import pair_label

__all__ = [
    "DEFAULT_BOX",
    "DEFAULT_DISTANCES",
    "DEFAULT_FD_STEP",
    "curve_metrics",
    "diatomic_curve",
    "diatomic_pairs",
    "isolated_atom_energy",
    "sign_changes",
]

#: 0.50, 0.55, ..., 3.00 Å, then 3.1, 3.2, ..., 6.0 Å (81 points): fine where bonds are, coarser in the tail
DEFAULT_DISTANCES = tuple(
    float(x)
    for x in np.round(np.concatenate([np.arange(0.5, 3.0, 0.05), np.arange(3.0, 6.0 + 1e-9, 0.1)]), 4)
)
#: half-step (Å) of the central differences that check forces against energies
DEFAULT_FD_STEP = 0.002
#: side (Å) of the cubic cell the pair sits in (the cell is periodic only with ``pbc=True``)
DEFAULT_BOX = 20.0


def diatomic_pairs(elements: Iterable[str], heteronuclear: bool = True) -> list[tuple[str, str]]:
    """The pairs of a study's elements: every homonuclear pair, then (if asked) every mixed one.

    Elements are taken in atomic-number order without repeats; ``["Cu", "H"]`` gives
    ``[("H", "H"), ("Cu", "Cu"), ("H", "Cu")]``.
    """
    from ase.data import atomic_numbers

    unique = []
    for symbol in elements:
        symbol = str(symbol).strip()
        if symbol not in atomic_numbers or symbol == "X":
            raise ValueError(f"unknown element symbol {symbol!r}")
        if symbol not in unique:
            unique.append(symbol)
    unique.sort(key=lambda s: atomic_numbers[s])
    pairs = [(s, s) for s in unique]
    if heteronuclear:
        pairs += [(a, b) for k, a in enumerate(unique) for b in unique[k + 1 :]]
    return pairs


def _pair_atoms(symbols: Sequence[str], box: float, pbc: bool) -> Atoms:
    centre = 0.5 * box
    positions = [[centre, centre, centre] for _ in symbols]
    return Atoms(list(symbols), positions=positions, cell=np.eye(3) * box, pbc=bool(pbc))


def isolated_atom_energy(calc, symbol: str, box: float = DEFAULT_BOX, pbc: bool = False) -> float:
    """Energy (eV) of one ``symbol`` atom alone in the same cell the curve uses."""
    return potential_energy(calc, _pair_atoms([symbol], box, pbc))


def potential_energy(calc, atoms: Atoms) -> float:
    """Energy (eV) of a copy of ``atoms`` with ``calc`` attached (``atoms`` itself is left untouched)."""
    work = atoms.copy()
    work.calc = calc
    return float(work.get_potential_energy())


def diatomic_curve(
    calc,
    a: str,
    b: str,
    distances: Iterable[float] = DEFAULT_DISTANCES,
    *,
    box: float = DEFAULT_BOX,
    pbc: bool = False,
    isolated: bool = True,
    fd_step: float | None = DEFAULT_FD_STEP,
) -> dict:
    """Energy and radial force of the ``a``-``b`` pair at each distance (Å), one model call each.

    The pair lies along x at the centre of a ``box`` Å cubic cell, periodic only when ``pbc``
    (then ``box`` must exceed the largest distance plus the model's cutoff). ``forces[k]`` is the
    force on atom ``b`` along the bond minus the force on atom ``a`` along it, halved: positive
    pushes the atoms apart (repulsion), and for a conservative model it equals ``-dE/dr``.
    With ``isolated`` the energies of the two single atoms in the same cell are computed too.
    With ``fd_step`` (Å) each distance is also evaluated at ``r ± fd_step`` and ``fd_forces`` holds
    ``-(E(r + fd_step) - E(r - fd_step)) / (2 fd_step)`` (three model calls a distance instead of one).

    Returns ``pair`` (``"A-B"``, atomic-number order), ``elements`` ``[a, b]``, ``distances``,
    ``energies`` (eV), ``forces`` (eV/Å) as float arrays sorted by distance, ``fd_forces`` (eV/Å,
    or None), ``isolated_energies`` (``{symbol: eV}`` or None), ``box``, ``pbc`` and ``n_calls``.
    """
    r = np.array(sorted(float(d) for d in distances), dtype=float)
    if r.size < 3:
        raise ValueError("a diatomic curve needs at least 3 distances")
    if r[0] <= 0:
        raise ValueError(f"distances must be positive, got {r[0]}")
    if pbc and box - r[-1] < r[-1]:
        raise ValueError(f"box {box} Å is too small for distances up to {r[-1]} Å with pbc=True")
    atoms = _pair_atoms([a, b], box, pbc)
    atoms.calc = calc
    centre = atoms.positions[0].copy()

    def evaluate(distance: float) -> tuple[float, float]:
        positions = atoms.get_positions()
        positions[0] = centre - [0.5 * distance, 0.0, 0.0]
        positions[1] = centre + [0.5 * distance, 0.0, 0.0]
        atoms.set_positions(positions)
        f = atoms.get_forces()
        return float(atoms.get_potential_energy()), float(0.5 * (f[1, 0] - f[0, 0]))

    energies = np.empty_like(r)
    forces = np.empty_like(r)
    fd_forces = None if not fd_step else np.empty_like(r)
    n_calls = 0
    for k, distance in enumerate(r):
        energies[k], forces[k] = evaluate(distance)
        n_calls += 1
        if fd_forces is not None:
            e_plus, _ = evaluate(distance + fd_step)
            e_minus, _ = evaluate(distance - fd_step)
            fd_forces[k] = -(e_plus - e_minus) / (2.0 * fd_step)
            n_calls += 2
    isolated_energies = None
    if isolated:
        isolated_energies = {s: isolated_atom_energy(calc, s, box, pbc) for s in dict.fromkeys([a, b])}
        n_calls += len(isolated_energies)
    return {
        "pair": pair_label(a, b),
        "elements": [a, b],
        "distances": r,
        "energies": energies,
        "forces": forces,
        "fd_forces": fd_forces,
        "isolated_energies": isolated_energies,
        "box": float(box),
        "pbc": bool(pbc),
        "n_calls": n_calls,
    }


def sign_changes(values: Iterable[float], tolerance: float) -> int:
    """How often ``values`` change sign, ignoring entries with ``|value| <= tolerance``.

    A run of near-zero entries between two entries of opposite sign counts as one change.
    """
    signs = [np.sign(v) for v in np.asarray(values, dtype=float) if abs(v) > tolerance]
    return int(sum(1 for s, t in zip(signs, signs[1:]) if s != t))


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size < 3 or np.ptp(y) == 0:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def _refine_minimum(r: np.ndarray, e: np.ndarray, k: int) -> tuple[float, float]:
    """Minimum of a cubic spline through up to 7 points around the lowest grid point ``k``."""
    from scipy.interpolate import CubicSpline

    lo, hi = max(0, k - 3), min(r.size, k + 4)
    spline = CubicSpline(r[lo:hi], e[lo:hi])
    candidates = [float(x) for x in spline.derivative().roots(extrapolate=False) if r[k - 1] <= x <= r[k + 1]]
    if not candidates:
        return float(r[k]), float(e[k])
    best = min(candidates, key=lambda x: float(spline(x)))
    return best, float(spline(best))


def _repulsive(metrics: dict, threshold: float, pushes_apart: bool) -> bool:
    spearman = metrics["repulsion_spearman"]
    monotonic = spearman is not None and spearman <= -0.95
    return bool(metrics["repulsion_energy"] > threshold and pushes_apart and monotonic)


def curve_metrics(
    distances: Iterable[float],
    energies: Iterable[float],
    forces: Iterable[float] | None = None,
    *,
    fd_forces: Iterable[float] | None = None,
    isolated_energy_sum: float | None = None,
    force_tolerance: float = 0.01,
    curvature_tolerance: float = 0.05,
    repulsion_threshold: float = 1.0,
    consistency_window: float = 10.0,
) -> dict:
    """Physical-sanity metrics of one pair curve ``E(r)`` (eV, Å) and its radial forces (eV/Å).

    - ``r_min`` (Å), ``e_min`` (eV): the lowest point, refined by a parabola through it and its
      two neighbours; ``minimum_at_edge`` when the lowest point is the first or last distance.
    - ``e_ref`` (eV): the energy at the largest distance (the curve's own dissociation limit);
      ``well_depth`` = ``e_ref - e_min`` (eV, positive for a bound pair).
    - ``tail_offset`` (eV): ``e_ref`` minus the two isolated atoms' energies
      (``isolated_energy_sum``), 0 for a model that has separated the pair by the last distance.
    - ``n_inflections``: sign changes of ``d2E/dr2`` (finite differences) beyond
      ``curvature_tolerance`` eV/Å²; 1 for a Morse-like curve, more for a wiggly one.
    - ``n_force_flips``: sign changes of the radial force beyond ``force_tolerance`` eV/Å; 1 for a
      single well (repulsive inside, attractive outside).
    - ``repulsion_energy`` (eV): ``E(r[0]) - e_min``, how far the wall at the shortest distance
      rises above the well; ``force_at_shortest`` (eV/Å); ``repulsion_spearman``: rank correlation
      of E with r inside ``r_min`` (-1 when the energy rises steadily as the atoms approach; higher
      when the wall has a dip, a "hole" the atoms can fall into); ``short_range_repulsion``:
      ``repulsion_energy`` above ``repulsion_threshold`` eV, a force at the shortest distance that
      pushes the atoms apart and ``repulsion_spearman <= -0.95``.
    - ``force_energy_max_dev`` (eV/Å): max ``|F + dE/dr|`` over the points whose energy is at
      most ``consistency_window`` eV above ``e_ref``, and ``force_energy_max_dev_r`` where it is;
      ``force_energy_max_dev_all`` over all points. ``dE/dr`` is ``-fd_forces`` when given (central
      differences around each point, see :func:`diatomic_curve`), else second-order finite
      differences on the grid itself (whose error grows as ``h**2`` times the third derivative:
      large on a steep wall, hence the window). ``fd_method`` says which.
      Force-derived metrics are None without ``forces``.
    """
    r = np.asarray(list(distances), dtype=float)
    e = np.asarray(list(energies), dtype=float)
    f = None if forces is None else np.asarray(list(forces), dtype=float)
    fd = None if fd_forces is None else np.asarray(list(fd_forces), dtype=float)
    if (
        r.ndim != 1
        or r.size < 3
        or e.shape != r.shape
        or any(x is not None and x.shape != r.shape for x in (f, fd))
    ):
        raise ValueError("distances, energies (and forces) must be 1D arrays of the same length >= 3")
    order = np.argsort(r)
    r, e = r[order], e[order]
    if f is not None:
        f = f[order]
    if fd is not None:
        fd = fd[order]
    if np.any(np.diff(r) <= 0):
        raise ValueError("distances must be distinct")
    finite = bool(all(x is None or np.all(np.isfinite(x)) for x in (e, f, fd)))
    if not finite:
        raise ValueError("the curve has non-finite energies or forces")

    k = int(np.argmin(e))
    at_edge = k in (0, r.size - 1)
    r_min, e_min = float(r[k]), float(e[k])
    if not at_edge:
        r_min, e_min = _refine_minimum(r, e, k)
    e_ref = float(e[-1])

    dedr = np.gradient(e, r, edge_order=2)
    d2edr2 = np.gradient(dedr, r, edge_order=2)
    inside = r < r_min
    metrics: dict = {
        "r_min": r_min,
        "e_min": e_min,
        "minimum_at_edge": bool(at_edge),
        "e_ref": e_ref,
        "well_depth": e_ref - e_min,
        "tail_offset": None if isolated_energy_sum is None else e_ref - float(isolated_energy_sum),
        "n_inflections": sign_changes(d2edr2, curvature_tolerance),
        "repulsion_energy": float(e[0] - e_min),
        "repulsion_spearman": _spearman(r[inside], e[inside]),
        "n_points": int(r.size),
        "r_range": [float(r[0]), float(r[-1])],
    }
    if f is None:
        metrics.update(
            n_force_flips=None,
            force_at_shortest=None,
            short_range_repulsion=_repulsive(metrics, repulsion_threshold, True),
            force_energy_max_dev=None,
            force_energy_max_dev_r=None,
            force_energy_max_dev_all=None,
            fd_method=None,
        )
        return metrics
    deviation = np.abs(f - fd) if fd is not None else np.abs(f + dedr)
    window = e <= e_ref + consistency_window
    if window.any():
        j = int(np.argmax(np.where(window, deviation, -np.inf)))
        max_dev, max_dev_r = float(deviation[j]), float(r[j])
    else:
        max_dev, max_dev_r = None, None
    metrics.update(
        n_force_flips=sign_changes(f, force_tolerance),
        force_at_shortest=float(f[0]),
        short_range_repulsion=_repulsive(metrics, repulsion_threshold, bool(f[0] > 0)),
        force_energy_max_dev=max_dev,
        force_energy_max_dev_r=max_dev_r,
        force_energy_max_dev_all=float(deviation.max()),
        fd_method="central" if fd is not None else "grid",
    )
    return metrics
