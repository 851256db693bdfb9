"""Tests of aiida_reactmlip.selection: committee std, fingerprint invariances, FPS, strategies and validation."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import fcc111, molecule

from aiida_reactmlip.selection import (
    available_strategies,
    committee_force_std,
    farthest_point_sampling,
    register_strategy,
    select,
    structural_fingerprint,
    structural_fingerprints,
)

# ------------------------------------------------------------------------------ committee force std


def test_committee_force_std_definition():
    """Two models differing by +-d on one component of one atom: std d on that atom, the frame max is d."""
    base = [np.zeros((2, 3)), np.ones((3, 3))]
    model_a = [f.copy() for f in base]
    model_b = [f.copy() for f in base]
    model_a[1][2, 0] += 0.3
    model_b[1][2, 0] -= 0.3
    model_a[1][0] += [0.1, 0.1, 0.0]  # atom 0: component std 0.05, 0.05 -> norm 0.0707
    std = committee_force_std([model_a, model_b])
    np.testing.assert_allclose(std, [0.0, 0.3])
    # three models: population std of (0, 0, 0.9) on one component = 0.9 * sqrt(2) / 3
    three = committee_force_std([[np.zeros((1, 3))], [np.zeros((1, 3))], [np.array([[0.0, 0.9, 0.0]])]])
    np.testing.assert_allclose(three, [0.9 * np.sqrt(2) / 3])


def test_committee_force_std_validation():
    with pytest.raises(ValueError, match="at least 2 models"):
        committee_force_std([[np.zeros((2, 3))]])
    with pytest.raises(ValueError, match="model 0 has forces for 1 frames but model 1 for 2"):
        committee_force_std([[np.zeros((2, 3))], [np.zeros((2, 3)), np.zeros((2, 3))]])
    with pytest.raises(ValueError, match=r"frame 0: model 0 gives forces of shape \(2, 3\), model 1 \(3, 3\)"):
        committee_force_std([[np.zeros((2, 3))], [np.zeros((3, 3))]])


# ------------------------------------------------------------------------------ fingerprint


def h2o_on_cu() -> Atoms:
    slab = fcc111("Cu", size=(2, 2, 2), vacuum=6.0)
    water = molecule("H2O")
    water.translate(slab.positions[-1] + [0.0, 0.0, 2.2])
    return slab + water


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def test_fingerprint_invariant_under_rotation_translation_permutation():
    atoms = molecule("CH3OH")
    reference = structural_fingerprint(atoms)
    assert reference.shape == (len([(1, 1), (1, 6), (1, 8), (6, 6), (6, 8), (8, 8)]) * 50,)
    assert reference.sum() > 0

    moved = atoms.copy()
    moved.positions = moved.positions @ random_rotation(3).T + [1.7, -4.2, 0.3]
    permuted = atoms.copy()
    hydrogens = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "H"]
    order = list(range(len(atoms)))
    for a, b in zip(hydrogens, hydrogens[::-1], strict=True):
        order[a] = b
    permuted = permuted[order]
    assert permuted.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert not np.allclose(permuted.positions, atoms.positions)
    np.testing.assert_allclose(structural_fingerprint(moved), reference, atol=1e-10)
    np.testing.assert_allclose(structural_fingerprint(permuted), reference, atol=1e-12)


def test_fingerprint_periodic_translation_and_stretched_bond():
    atoms = h2o_on_cu()
    reference = structural_fingerprint(atoms)
    shifted = atoms.copy()
    shifted.translate([1.1, 0.7, 0.0])  # atoms cross the periodic boundary in x/y
    shifted.wrap()
    np.testing.assert_allclose(structural_fingerprint(shifted), reference, atol=1e-10)
    stretched = atoms.copy()
    o, h = 8, 9  # O and the first H of the water
    bond = stretched.positions[h] - stretched.positions[o]
    stretched.positions[h] = stretched.positions[o] + bond * 1.3
    # blocks H-H, H-O, H-Cu, O-O, O-Cu, Cu-Cu of 50 points on 0..5 Å: the H-O block moves its first peak
    grid = np.linspace(0.0, 5.0, 50)
    h_o = slice(50, 100)
    before, after = (structural_fingerprint(a, kind="density")[h_o] for a in (atoms, stretched))
    short, long = np.argmin(np.abs(grid - 0.97)), np.argmin(np.abs(grid - 0.97 * 1.3))
    assert before[short] - after[short] > 0.03 and after[long] - before[long] > 0.03
    # cumulative (default): one O-H pair fewer within r between the two bond lengths (1/11 atoms * f_c)
    d_oh = atoms.get_distance(o, h)
    middle = np.argmin(np.abs(grid - d_oh * 1.15))
    sharp = [structural_fingerprint(a, sigma=0.02)[h_o][middle] for a in (atoms, stretched)]
    assert sharp[0] - sharp[1] == pytest.approx(0.5 * (1 + np.cos(np.pi * d_oh / 5.0)) / len(atoms), rel=1e-3)
    np.testing.assert_allclose(structural_fingerprint(stretched)[250:], reference[250:])  # Cu-Cu unchanged


def test_fingerprint_h2_bond_length_peak():
    """The H-H block of H2 peaks at the bond length (Gaussian smearing on the grid 0..cutoff)."""
    cutoff, n_bins = 5.0, 101
    for length in (0.74, 1.5):
        fp = structural_fingerprint(Atoms("H2", positions=[[0, 0, 0], [0, 0, length]]), cutoff=cutoff, n_bins=n_bins,
                                    kind="density")
        grid = np.linspace(0, cutoff, n_bins)
        assert abs(grid[np.argmax(fp)] - length) <= 0.5 * cutoff / (n_bins - 1) + 1e-9


def test_cumulative_fingerprint_distance_keeps_growing_as_a_bond_breaks():
    lengths = [0.74, 1.0, 1.5, 2.5, 3.5]
    images = [Atoms("H2", positions=[[0, 0, 0], [0, 0, d]]) for d in lengths]
    for kind, monotonic in (("cumulative", True), ("density", False)):
        fps = structural_fingerprints(images, kind=kind)
        distances = np.linalg.norm(fps[1:] - fps[0], axis=1)
        assert bool(np.all(np.diff(distances) > 0)) is monotonic, (kind, distances)
    with pytest.raises(ValueError, match="kind must be one of cumulative, density"):
        structural_fingerprint(images[0], kind="soap")


def test_fingerprints_share_element_blocks():
    fps = structural_fingerprints([molecule("H2"), molecule("H2O")])
    assert fps.shape == (2, 3 * 50)  # pairs H-H, H-O, O-O for both frames
    assert np.all(fps[0, 50:] == 0)  # H2 has no H-O or O-O distances


# ------------------------------------------------------------------------------ FPS


def test_fps_on_a_line_picks_extremes_first():
    x = np.array([0.0, 1.0, 2.5, 3.0, 6.5, 9.0, 10.0])[:, None]
    picks = farthest_point_sampling(x, 3)
    assert set(picks[:2]) == {0, 6}
    assert picks[2] == 4  # 6.5: 3.5 from the nearest end (3.0 is only 3.0 from 0)
    # with frame 6 (10.0) already selected, the first pick is the far end, then the middle
    assert farthest_point_sampling(x, 2, already_selected=[6]) == [0, 4]


def test_fps_ties_are_seeded():
    x = np.array([[0.0], [1.0], [2.0]])  # 0 and 2 tie as farthest from the mean
    firsts = {farthest_point_sampling(x, 1, seed=s)[0] for s in range(20)}
    assert firsts == {0, 2}
    assert farthest_point_sampling(x, 3, seed=5) == farthest_point_sampling(x, 3, seed=5)


# ------------------------------------------------------------------------------ strategies


def pool_images(n: int = 8) -> list[Atoms]:
    """H2 at bond lengths 0.6 ... 2.0 Å (n frames)."""
    return [Atoms("H2", positions=[[0, 0, 0], [0, 0, d]]) for d in np.linspace(0.6, 2.0, n)]


def committee(images, noisy: dict[int, float], n_models: int = 3, seed: int = 0):
    """Forces of n_models models: shared base forces, plus disagreement of size noisy[f] on frame f."""
    rng = np.random.default_rng(seed)
    base = [rng.normal(size=(len(a), 3)) for a in images]
    out = []
    for m in range(n_models):
        frames = []
        for f, forces in enumerate(base):
            forces = forces + 1e-4 * rng.normal(size=forces.shape)
            if f in noisy:
                forces = forces + noisy[f] * (m - (n_models - 1) / 2) * np.array([1.0, 0.0, 0.0])
            frames.append(forces)
        out.append(frames)
    return out


def test_builtin_strategies_registered():
    assert {"random", "committee", "fps", "committee+fps"} <= set(available_strategies())


def test_committee_picks_injected_disagreement():
    images = pool_images()
    forces = committee(images, {5: 1.0, 2: 0.4})
    assert select("committee", 1, pool_images=images, committee_forces=forces) == [5]
    assert select("committee", 2, pool_images=images, committee_forces=forces) == [5, 2]
    assert select("committee", 1, pool_images=images, committee_forces=forces, already_selected=[5]) == [2]
    std = committee_force_std(forces)
    assert std[5] == pytest.approx(1.0 * np.sqrt(2 / 3), rel=1e-3)  # offsets -1, 0, +1 -> population std


def test_random_is_seeded_and_reproducible():
    images = pool_images(20)
    a = select("random", 5, pool_images=images, seed=7)
    assert a == select("random", 5, pool_images=images, seed=7)
    assert a != select("random", 5, pool_images=images, seed=8)
    assert a == [int(i) for i in np.random.default_rng(7).choice(np.arange(20), 5, replace=False)]
    b = select("random", 15, pool_images=images, seed=7, already_selected=a)
    assert not set(a) & set(b) and len(set(b)) == 15


def test_fps_strategy_on_fingerprints_and_descriptors():
    images = pool_images(8)  # bond lengths 0.6 ... 2.0 Å: the fingerprint orders them along a curve
    picks = select("fps", 2, pool_images=images)
    assert set(picks) == {0, 7}
    line = np.arange(8.0)[:, None] ** 2  # descriptors take precedence over the fingerprint
    assert set(select("fps", 2, pool_images=images, descriptors=line)) == {0, 7}
    assert select("fps", 1, pool_images=images, descriptors=line, already_selected=[0, 7]) == [5]
    # a reference frame at 2.0 Å (the training set) is covered: the far end 0.6 Å comes first
    reference = [Atoms("H2", positions=[[0, 0, 0], [0, 0, 2.0]])]
    assert select("fps", 1, pool_images=images, reference_images=reference) == [0]


def test_committee_fps_is_uncertain_and_diverse():
    images = pool_images(12)
    # frames 9, 10, 11 (near-identical, long bonds) are the most uncertain; frames 0 and 1 next
    forces = committee(images, {9: 1.0, 10: 0.99, 11: 0.98, 0: 0.9, 1: 0.89})
    assert select("committee", 2, pool_images=images, committee_forces=forces) == [9, 10]
    picks = select("committee+fps", 2, pool_images=images, committee_forces=forces)
    assert set(picks) <= {9, 10, 11, 0, 1, 2}  # from the 3k = 6 most uncertain
    assert min(picks) <= 1 and max(picks) >= 9  # one of each cluster, not two neighbours
    uncertainty = committee_force_std(forces)
    assert picks == select("committee+fps", 2, pool_images=images, uncertainty=uncertainty)


def test_never_reselects_already_selected():
    images = pool_images(10)
    forces = committee(images, {i: 0.1 * i for i in range(10)})
    taken = [9, 8, 0]
    for strategy in ("random", "committee", "fps", "committee+fps"):
        picks = select(strategy, 7, pool_images=images, committee_forces=forces, already_selected=taken)
        assert sorted(picks) == [1, 2, 3, 4, 5, 6, 7], strategy


@pytest.mark.parametrize(
    ("strategy", "kwargs", "message"),
    [
        ("committee", {}, "needs the committee's forces: pass committee_forces="),
        ("committee+fps", {}, "needs the committee's forces: pass committee_forces="),
        ("uncertainty", {}, "unknown selection strategy 'uncertainty'; known: committee, committee+fps, fps, random"),
        ("random", {"k": 9}, "cannot select k=9 frames: the pool has 8 frame(s), 0 already selected, 8 available"),
        ("random", {"k": 7, "already_selected": [0, 1]}, "2 already selected, 6 available"),
        ("random", {"k": -1}, "k (frames to select) must be an integer >= 0"),
        ("random", {"already_selected": [8]}, "already_selected holds index 8, outside the pool of 8 frames"),
        ("fps", {"descriptors": np.zeros((5, 2))}, "inconsistent pool sizes: pool_images 8, descriptors 5"),
    ],
)
def test_select_validation(strategy, kwargs, message):
    kwargs = {"k": 2, **kwargs}
    with pytest.raises(ValueError) as excinfo:
        select(strategy, kwargs.pop("k"), pool_images=pool_images(8), **kwargs)
    assert message in str(excinfo.value)


def test_committee_forces_must_match_pool_atoms():
    images = pool_images(3)
    forces = [[np.zeros((3, 3))] * 3, [np.zeros((3, 3))] * 3]
    with pytest.raises(ValueError, match=r"committee_forces\[0\]\[0\] has shape \(3, 3\), pool frame 0 has 2 atoms"):
        select("committee", 1, pool_images=images, committee_forces=forces)


def test_register_custom_strategy():
    @register_strategy("test-last")
    def last(k, pool):
        return list(pool.available[-k:])

    try:
        assert select("test-last", 2, pool_images=pool_images(5), already_selected=[4]) == [2, 3]
        with pytest.raises(ValueError, match="already registered"):
            register_strategy("test-last")(lambda k, pool: [])

        @register_strategy("test-bad", replace=True)
        def bad(k, pool):
            return [0] * k

        with pytest.raises(RuntimeError, match="expected 2 distinct indices"):
            select("test-bad", 2, pool_images=pool_images(5))
    finally:
        from aiida_reactmlip.selection import _STRATEGIES

        _STRATEGIES.pop("test-last", None)
        _STRATEGIES.pop("test-bad", None)
