"""Selection strategies and their building blocks (pure numpy; ASE Atoms only through the fingerprint).

A strategy is a function ``strategy(k, pool) -> list of pool indices`` (``pool`` a :class:`SelectionPool`),
registered by name with :func:`aiida_reactmlip.selection.register_strategy`. The built-in ones:

- ``random``: ``k`` frames drawn without replacement with ``numpy.random.default_rng(seed)`` (the baseline).
- ``committee``: the ``k`` frames with the largest committee force standard deviation
  (:func:`committee_force_std`, eV/Å); ties go to the lower index.
- ``fps``: farthest-point sampling (:func:`farthest_point_sampling`) on the model's ``descriptors`` when given,
  else on :func:`aiida_reactmlip.selection.fingerprints.structural_fingerprints`; frames already selected
  (and reference frames, e.g. the training set) count as covered.
- ``committee+fps``: the ``preselect_factor * k`` (default 3k) most uncertain frames, then FPS among them:
  uncertain *and* diverse, so a batch is not k copies of the same uncertain configuration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np


def committee_force_std(forces_per_model: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Per-frame committee disagreement (eV/Å) from the forces of M >= 2 models on the same F frames.

    ``forces_per_model[m][f]`` is the (n_f, 3) force array (eV/Å) of model m on frame f. For every atom a of
    frame f the per-component standard deviation over the models (population, ddof 0) is taken and its norm

        s_a = sqrt(sum_c std_m(F_m,a,c)^2) = sqrt(mean_m |F_m,a - <F_a>|^2)

    and the frame's value is ``max_a s_a``: the most uncertain atom decides, since one badly described atom
    (a bond being broken) is what makes a frame worth labelling. Returns an (F,) array.
    """
    models = [list(frames) for frames in forces_per_model]
    if len(models) < 2:
        raise ValueError(f"a committee needs the forces of at least 2 models, got {len(models)}")
    n_frames = len(models[0])
    for m, frames in enumerate(models):
        if len(frames) != n_frames:
            raise ValueError(f"model 0 has forces for {n_frames} frames but model {m} for {len(frames)}")
    out = np.zeros(n_frames)
    for f in range(n_frames):
        arrays = [np.asarray(frames[f], dtype=float) for frames in models]
        shape = arrays[0].shape
        if len(shape) != 2 or shape[1] != 3:
            raise ValueError(f"frame {f}: forces must have shape (n_atoms, 3), got {shape}")
        for m, array in enumerate(arrays):
            if array.shape != shape:
                raise ValueError(f"frame {f}: model 0 gives forces of shape {shape}, model {m} {array.shape}")
        stacked = np.stack(arrays)  # (M, n, 3)
        if not np.all(np.isfinite(stacked)):
            raise ValueError(f"frame {f}: non-finite forces")
        per_atom = np.sqrt(stacked.var(axis=0).sum(axis=1))  # (n,)
        out[f] = float(per_atom.max()) if per_atom.size else 0.0
    return out


def _tie_break_order(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def farthest_point_sampling(
    features: np.ndarray,
    k: int,
    already_selected: Sequence[int] | None = None,
    seed: int = 0,
    *,
    candidates: Sequence[int] | None = None,
    reference: np.ndarray | None = None,
) -> list[int]:
    """``k`` row indices of ``features`` (F, D), each the candidate farthest (Euclidean) from those covered.

    Covered: the rows ``already_selected``, the rows of ``reference`` (R, D) and every pick so far. With
    nothing covered the first pick is the candidate farthest from the candidates' mean (so on points along a
    line the two ends come first). Candidates: ``candidates`` (default every row not in
    ``already_selected``). Exact ties are broken by a permutation seeded with ``seed``. Returns picks in order.
    """
    features = np.asarray(features, dtype=float)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2D array (frames, dimensions), got shape {features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError("features hold non-finite values")
    selected = sorted({int(i) for i in (already_selected or [])})
    pool = (np.array(sorted({int(i) for i in candidates}), dtype=int) if candidates is not None
            else np.array([i for i in range(len(features)) if i not in set(selected)], dtype=int))
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k > len(pool):
        raise ValueError(f"cannot pick {k} frames by farthest-point sampling among {len(pool)} candidates")
    if k == 0:
        return []
    covered = [features[selected]] if selected else []
    if reference is not None and len(reference):
        reference = np.asarray(reference, dtype=float)
        if reference.ndim != 2 or reference.shape[1] != features.shape[1]:
            raise ValueError(f"reference features have shape {reference.shape}, expected (R, {features.shape[1]})")
        covered.append(reference)
    order = _tie_break_order(len(pool), seed)
    pool = pool[order]
    x = features[pool]
    if covered:
        from scipy.spatial.distance import cdist

        mindist = cdist(x, np.concatenate(covered)).min(axis=1)
    else:
        mindist = np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1))  # seeds the first pick only
    picks: list[int] = []
    taken = np.zeros(len(pool), dtype=bool)
    for _ in range(k):
        score = np.where(taken, -np.inf, mindist)
        best = int(np.argmax(score))  # first maximum in the seeded order
        picks.append(int(pool[best]))
        taken[best] = True
        d = np.sqrt(((x - x[best]) ** 2).sum(axis=1))
        mindist = d if (not covered and len(picks) == 1) else np.minimum(mindist, d)
    return picks


# ------------------------------------------------------------------------------ the pool a strategy sees


@dataclasses.dataclass
class SelectionPool:
    """What a strategy gets: the pool, what is already taken, and what was passed to :func:`select`.

    ``available``: pool indices that may be selected (not in ``already_selected``), ascending.
    Use :meth:`uncertainty` and :meth:`features` rather than the raw inputs: they validate and explain.
    """

    size: int
    available: np.ndarray
    already_selected: list[int]
    seed: int
    images: list | None = None
    committee_forces: Any = None
    uncertainty_values: np.ndarray | None = None
    descriptors: np.ndarray | None = None
    reference_images: list | None = None
    reference_descriptors: np.ndarray | None = None
    fingerprint_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def uncertainty(self, strategy: str) -> np.ndarray:
        """Per-frame committee force std (eV/Å) of the whole pool; ValueError saying what to pass if absent."""
        if self.uncertainty_values is None:
            if self.committee_forces is None:
                raise ValueError(
                    f"strategy {strategy!r} needs the committee's forces: pass committee_forces= (a list over "
                    "the models of a list over the pool frames of (n_atoms, 3) force arrays in eV/Å; at least "
                    "2 models) or uncertainty= (one value per pool frame)"
                )
            n_frames = {len(list(frames)) for frames in self.committee_forces}
            if n_frames != {self.size}:
                raise ValueError(f"committee_forces cover {sorted(n_frames)} frames, the pool has {self.size}")
            if self.images is not None:
                for m, frames in enumerate(self.committee_forces):
                    for f, forces in enumerate(frames):
                        if np.shape(forces) != (len(self.images[f]), 3):
                            raise ValueError(f"committee_forces[{m}][{f}] has shape {np.shape(forces)}, pool frame "
                                             f"{f} has {len(self.images[f])} atoms")
            self.uncertainty_values = committee_force_std(self.committee_forces)
        return self.uncertainty_values

    def features(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(pool features (F, D), reference features or None): ``descriptors`` if given, else fingerprints."""
        from aiida_reactmlip.selection.fingerprints import structural_fingerprints

        if self.descriptors is not None:
            reference = self.reference_descriptors
            if reference is None and self.reference_images:
                raise ValueError("with descriptors=, give the reference frames as reference_descriptors=")
            return self.descriptors, reference
        if self.images is None:
            raise ValueError("farthest-point sampling needs pool_images= (for the structural fingerprint) or "
                             "descriptors= (one row per pool frame)")
        reference_images = list(self.reference_images or [])
        options = dict(self.fingerprint_options)
        if "elements" not in options:
            options["elements"] = sorted({int(z) for atoms in [*self.images, *reference_images] for z in atoms.numbers})
        features = structural_fingerprints(self.images, **options)
        reference = structural_fingerprints(reference_images, **options) if reference_images else None
        return features, reference


def select_random(k: int, pool: SelectionPool) -> list[int]:
    """``k`` available frames drawn uniformly without replacement, ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(pool.seed)
    return [int(i) for i in rng.choice(pool.available, size=k, replace=False)]


def _most_uncertain(pool: SelectionPool, strategy: str, n: int) -> list[int]:
    scores = pool.uncertainty(strategy)[pool.available]
    order = np.lexsort((pool.available, -scores))  # descending score, then ascending index
    return [int(i) for i in pool.available[order[:n]]]


def select_committee(k: int, pool: SelectionPool) -> list[int]:
    """The ``k`` available frames with the largest committee force std, most uncertain first."""
    return _most_uncertain(pool, "committee", k)


def select_fps(k: int, pool: SelectionPool) -> list[int]:
    """Farthest-point sampling among the available frames; already selected and reference frames are covered."""
    features, reference = pool.features()
    return farthest_point_sampling(features, k, pool.already_selected, pool.seed, candidates=pool.available,
                                   reference=reference)


def select_committee_fps(k: int, pool: SelectionPool) -> list[int]:
    """The ``preselect_factor * k`` most uncertain available frames (default 3k), then FPS among them."""
    factor = pool.options.get("preselect_factor", 3)
    if not factor >= 1:
        raise ValueError(f"preselect_factor must be >= 1, got {factor}")
    shortlist = _most_uncertain(pool, "committee+fps", min(len(pool.available), int(np.ceil(factor * k))))
    features, reference = pool.features()
    return farthest_point_sampling(features, k, pool.already_selected, pool.seed, candidates=shortlist,
                                   reference=reference)
