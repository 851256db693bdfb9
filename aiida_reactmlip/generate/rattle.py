"""Random displacements of atoms, deterministic for a seed (pure ASE/numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from .scans import _fresh_copy, format_value, frame_prefix

__all__ = ["rattle"]


def rattle(
    atoms: Atoms,
    n: int,
    stdev: float = 0.05,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    name: str | None = None,
) -> list[Atoms]:
    """``n`` copies of ``atoms`` with Gaussian displacements (standard deviation ``stdev`` Å per component).

    Deterministic: the same ``(atoms, n, stdev, seed)`` gives the same frames (one
    ``numpy.random.default_rng(seed)`` draws all frames in order). ``indices``: atoms to move
    (default all; constraints are not consulted). Frames get ``role="rattle"``,
    ``rattle_stdev``, ``rattle_seed``, ``rattle_index`` and ``name``
    ``"<prefix>-rattle-<stdev>-<seed>-<k>"``.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not np.isfinite(stdev) or stdev < 0:
        raise ValueError(f"stdev must be a non-negative length in Å, got {stdev!r}")
    move = np.arange(len(atoms)) if indices is None else np.asarray(indices, dtype=int)
    if move.size and (move.min() < -len(atoms) or move.max() >= len(atoms)):
        raise ValueError(f"indices out of range for {len(atoms)} atoms")
    rng = np.random.default_rng(seed)
    prefix = frame_prefix(atoms, name)
    frames = []
    for k in range(int(n)):
        new = _fresh_copy(atoms)
        pos = new.get_positions()
        pos[move] += rng.normal(0.0, stdev, size=(move.size, 3))
        new.set_positions(pos, apply_constraint=False)
        new.info.update(
            role="rattle",
            rattle_stdev=float(stdev),
            rattle_seed=int(seed),
            rattle_index=k,
            name=f"{prefix}-rattle-{format_value(stdev, 3)}-{seed}-{k}",
        )
        frames.append(new)
    return frames
