"""Which pool frames deserve a DFT label: pluggable selection strategies (pure: numpy / ASE, no aiida).

    from aiida_reactmlip.selection import select
    picks = select("committee+fps", 5, pool_images=images, committee_forces=forces, already_selected=[3, 8])

Strategies by name: ``random`` (the baseline), ``committee`` (largest committee force std, eV/Å),
``fps`` (farthest-point sampling on model descriptors or a structural fingerprint), ``committee+fps``
(top uncertainty, then diversity); see :mod:`aiida_reactmlip.selection.strategies`. Add one with::

    @register_strategy("my-strategy")
    def my_strategy(k, pool):  # pool: SelectionPool; return k indices out of pool.available
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from aiida_reactmlip.selection.fingerprints import structural_fingerprint, structural_fingerprints
from aiida_reactmlip.selection.strategies import (
    SelectionPool,
    committee_force_std,
    farthest_point_sampling,
    select_committee,
    select_committee_fps,
    select_fps,
    select_random,
)

__all__ = [
    "SelectionPool",
    "available_strategies",
    "committee_force_std",
    "farthest_point_sampling",
    "register_strategy",
    "select",
    "structural_fingerprint",
    "structural_fingerprints",
]

Strategy = Callable[[int, SelectionPool], Sequence[int]]

#: Strategies that rank the pool by a committee's disagreement (they need committee scores).
COMMITTEE_STRATEGIES = ("committee", "committee+fps")

_STRATEGIES: dict[str, Strategy] = {}

#: built-in strategies that need committee_forces= or uncertainty=
NEEDS_COMMITTEE = ("committee", "committee+fps")


def register_strategy(name: str, *, replace: bool = False) -> Callable[[Strategy], Strategy]:
    """Decorator registering ``strategy(k, pool) -> indices`` under ``name`` (``replace`` to override one)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a strategy name must be a non-empty string, got {name!r}")

    def decorator(function: Strategy) -> Strategy:
        if name in _STRATEGIES and not replace and _STRATEGIES[name] is not function:
            raise ValueError(f"a selection strategy named {name!r} is already registered (pass replace=True)")
        _STRATEGIES[name] = function
        return function

    return decorator


def available_strategies() -> list[str]:
    """Names of the registered strategies, sorted."""
    return sorted(_STRATEGIES)


register_strategy("random")(select_random)
register_strategy("committee")(select_committee)
register_strategy("fps")(select_fps)
register_strategy("committee+fps")(select_committee_fps)


def _index_list(values, size: int, what: str) -> list[int]:
    out = []
    for value in values or []:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{what} must hold pool indices (integers), got {value!r}")  # noqa: TRY004
        if not 0 <= int(value) < size:
            raise ValueError(f"{what} holds index {int(value)}, outside the pool of {size} frames")
        out.append(int(value))
    return sorted(set(out))


def select(
    strategy_name: str,
    k: int,
    *,
    pool_images: Sequence | None,
    committee_forces: Sequence[Sequence[np.ndarray]] | None = None,
    descriptors: np.ndarray | None = None,
    already_selected: Sequence[int] | None = None,
    seed: int = 0,
    uncertainty: Sequence[float] | np.ndarray | None = None,
    reference_images: Sequence | None = None,
    reference_descriptors: np.ndarray | None = None,
    fingerprint_options: dict[str, Any] | None = None,
    preselect_factor: float = 3,
) -> list[int]:
    """``k`` indices into the pool chosen by the strategy ``strategy_name``, in the strategy's order.

    - ``pool_images``: the candidate frames (ASE Atoms); may be None when ``descriptors`` / ``uncertainty`` /
      ``committee_forces`` define the pool (then the fingerprint is unavailable).
    - ``committee_forces``: ``[model][frame]`` (n_atoms, 3) forces in eV/Å of >= 2 models (see
      :func:`committee_force_std`); or ``uncertainty``: one precomputed value per pool frame (eV/Å).
    - ``descriptors``: (F, D) model descriptors per frame for FPS (default: the structural fingerprint).
    - ``already_selected``: pool indices taken in earlier rounds: never selected again, and covered for FPS.
    - ``reference_images`` / ``reference_descriptors``: frames outside the pool already labelled (e.g. the
      training set): covered for FPS.
    - ``seed``: for ``random`` and FPS tie-breaking; the same inputs and seed give the same picks.

    Raises ``ValueError`` for an unknown strategy (listing the known ones), ``k`` larger than the frames
    still available, a committee strategy without ``committee_forces``/``uncertainty``, or inconsistent sizes.
    """
    if strategy_name not in _STRATEGIES:
        raise ValueError(f"unknown selection strategy {strategy_name!r}; known: {', '.join(available_strategies())}")
    if strategy_name in NEEDS_COMMITTEE and committee_forces is None and uncertainty is None:
        raise ValueError(
            f"strategy {strategy_name!r} needs the committee's forces: pass committee_forces= (a list over the "
            "models of a list over the pool frames of (n_atoms, 3) force arrays in eV/Å; at least 2 models) "
            "or uncertainty= (one value per pool frame)"
        )
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k (frames to select) must be an integer >= 0, got {k!r}")
    k = int(k)
    images = list(pool_images) if pool_images is not None else None
    sizes = {}
    if images is not None:
        sizes["pool_images"] = len(images)
    if descriptors is not None:
        descriptors = np.asarray(descriptors, dtype=float)
        if descriptors.ndim != 2:
            raise ValueError(f"descriptors must be a 2D array (frames, dimensions), got shape {descriptors.shape}")
        sizes["descriptors"] = len(descriptors)
    if uncertainty is not None:
        uncertainty = np.asarray(uncertainty, dtype=float).reshape(-1)
        if not np.all(np.isfinite(uncertainty)):
            raise ValueError("uncertainty holds non-finite values")
        sizes["uncertainty"] = len(uncertainty)
    if committee_forces is not None:
        committee_forces = [list(frames) for frames in committee_forces]
        if committee_forces:
            sizes["committee_forces"] = len(committee_forces[0])
    if not sizes:
        raise ValueError("select needs the pool: pass pool_images= (or descriptors=, uncertainty=, committee_forces=)")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"inconsistent pool sizes: {', '.join(f'{k_} {v}' for k_, v in sizes.items())}")
    size = next(iter(sizes.values()))
    selected = _index_list(already_selected, size, "already_selected")
    available = np.array([i for i in range(size) if i not in set(selected)], dtype=int)
    if k > len(available):
        raise ValueError(
            f"cannot select k={k} frames: the pool has {size} frame(s), {len(selected)} already selected, "
            f"{len(available)} available; lower k or explore more"
        )
    if reference_descriptors is not None:
        reference_descriptors = np.asarray(reference_descriptors, dtype=float)
    pool = SelectionPool(
        size=size, available=available, already_selected=selected, seed=int(seed), images=images,
        committee_forces=committee_forces, uncertainty_values=uncertainty, descriptors=descriptors,
        reference_images=list(reference_images) if reference_images is not None else None,
        reference_descriptors=reference_descriptors, fingerprint_options=dict(fingerprint_options or {}),
        options={"preselect_factor": preselect_factor},
    )
    if k == 0:
        return []
    picks = [int(i) for i in _STRATEGIES[strategy_name](k, pool)]
    bad = sorted(set(picks) - set(available.tolist()))
    if len(picks) != k or len(set(picks)) != k or bad:
        raise RuntimeError(
            f"strategy {strategy_name!r} returned {picks}: expected {k} distinct indices among the available frames"
        )
    return picks
