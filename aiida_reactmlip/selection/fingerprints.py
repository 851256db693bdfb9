"""A simple structural fingerprint for diversity selection when the model offers no descriptor (pure: ASE/numpy).

For every element pair (A, B) with Z_A <= Z_B of a fixed element list, the A-B interatomic distances d within
``cutoff`` (Å, periodic images included through ``ase.neighborlist``) are smeared by a Gaussian of width
``sigma`` (Å), weighted by a smooth cosine cutoff function f_c(d) = (1 + cos(pi d / cutoff)) / 2, sampled on a
grid of ``n_bins`` points r from 0 to ``cutoff`` and divided by the number of atoms. Two kinds:

- ``"cumulative"`` (default): sum over pairs of f_c(d) * Phi((r - d) / sigma), Phi the normal CDF: a smoothed
  running coordination number per atom, N(r) / N. Moving a distance by D changes it on an interval of length
  D, so the Euclidean distance between two fingerprints keeps growing (~ sqrt(D)) as a bond stretches and
  breaks: farthest-point sampling then tells a broken bond from a stretched one.
- ``"density"``: sum over pairs of f_c(d) * exp(-(r - d)^2 / (2 sigma^2)): a smeared radial distribution.
  Distances between fingerprints saturate once the peaks no longer overlap (D > ~3 sigma).

The pair blocks are concatenated in sorted (Z_A, Z_B) order. Distances make the fingerprint invariant under
rotation and translation, sums over pairs under permutation of atoms of the same element; it changes
continuously with the positions. Its length is ``n_pairs * n_bins``, ``n_pairs = n_el (n_el + 1) / 2``: every
frame of a pool must use the same element list, which :func:`structural_fingerprints` takes as the union over
the frames it is given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_CUTOFF = 5.0  # Å
DEFAULT_N_BINS = 50
DEFAULT_SIGMA = 0.15  # Å
KINDS = ("cumulative", "density")


def element_pairs(numbers: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted (Z_A, Z_B) pairs with Z_A <= Z_B of the distinct atomic numbers in ``numbers``."""
    elements = sorted({int(z) for z in numbers})
    return [(a, b) for i, a in enumerate(elements) for b in elements[i:]]


def structural_fingerprint(
    atoms,
    *,
    cutoff: float = DEFAULT_CUTOFF,
    n_bins: int = DEFAULT_N_BINS,
    sigma: float = DEFAULT_SIGMA,
    elements: Sequence[int] | None = None,
    kind: str = "cumulative",
) -> np.ndarray:
    """The fingerprint (1D array, length ``n_pairs * n_bins``) of one frame; see the module docstring.

    ``elements``: atomic numbers defining the pair blocks (default: those of ``atoms``); an element of
    ``atoms`` missing from ``elements`` raises ``ValueError``.
    """
    from ase.neighborlist import neighbor_list

    if kind not in KINDS:
        raise ValueError(f"fingerprint kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not cutoff > 0 or not sigma > 0 or int(n_bins) < 2:
        raise ValueError(f"need cutoff > 0 Å, sigma > 0 Å and n_bins >= 2; got {cutoff}, {sigma}, {n_bins}")
    numbers = np.asarray(atoms.numbers, dtype=int)
    pairs = element_pairs(numbers if elements is None else elements)
    missing = sorted(set(numbers.tolist()) - {z for pair in pairs for z in pair})
    if missing:
        raise ValueError(f"the frame has element(s) with atomic number {missing} not in elements={list(elements)}")
    grid = np.linspace(0.0, cutoff, int(n_bins))
    out = np.zeros((len(pairs), len(grid)))
    if len(atoms):
        i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
        # every pair (an atom and its own periodic images included) is listed in both directions: weight 1/2
        weight = 0.25 * (np.cos(np.pi * d / cutoff) + 1.0)
        za, zb = numbers[i], numbers[j]
        lo, hi = np.minimum(za, zb), np.maximum(za, zb)
        keys = np.array([a * 1000 + b for a, b in pairs], dtype=np.int64)  # sorted, as pairs are
        block = np.searchsorted(keys, lo.astype(np.int64) * 1000 + hi)
        z = (grid[None, :] - d[:, None]) / sigma
        if kind == "density":
            shape = np.exp(-0.5 * z**2)
        else:
            from scipy.special import ndtr

            shape = ndtr(z)
        np.add.at(out, block, shape * weight[:, None])
    return (out / max(len(atoms), 1)).ravel()


def structural_fingerprints(images: Sequence, *, elements: Sequence[int] | None = None, **options) -> np.ndarray:
    """Fingerprints of ``images`` as an (F, D) array, on the union of their elements (or ``elements``).

    ``options``: ``cutoff`` (Å), ``n_bins``, ``sigma`` (Å) and ``kind`` of :func:`structural_fingerprint`.
    """
    images = list(images)
    if elements is None:
        elements = sorted({int(z) for atoms in images for z in atoms.numbers})
    width = len(element_pairs(elements)) * int(options.get("n_bins", DEFAULT_N_BINS))
    if not images:
        return np.zeros((0, width))
    return np.stack([structural_fingerprint(atoms, elements=elements, **options) for atoms in images])
