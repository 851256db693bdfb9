"""NEB images (IDPP through ase.mep): end states kept, monotonic interpolation, determinism, errors."""

import numpy as np
import pytest
from ase import Atoms

from aiida_reactmlip.generate import neb_images, path_length
from aiida_reactmlip.systems import fcc_slab, find_sites
from aiida_reactmlip.systems.surfaces import place_adsorbate


def _hop():
    slab = fcc_slab("Cu", "111")
    sites = find_sites(slab)
    initial = place_adsorbate(slab, "H", sites["fcc"])
    final = place_adsorbate(slab, "H", sites["hcp"])
    initial.info["system"] = "h-hop"
    return initial, final


def test_idpp_images_monotonic_between_kept_end_states():
    initial, final = _hop()
    before = (initial.positions.copy(), final.positions.copy())
    images = neb_images(initial, final, n_images=5)
    assert len(images) == 5
    np.testing.assert_array_equal(initial.positions, before[0])  # inputs not mutated
    np.testing.assert_array_equal(final.positions, before[1])
    path = [initial, *images, final]
    axis = final.positions[-1] - initial.positions[-1]
    progress = [np.dot(a.positions[-1] - initial.positions[-1], axis) / np.dot(axis, axis) for a in path]
    assert progress[0] == 0 and progress[-1] == pytest.approx(1.0)
    assert np.all(np.diff(progress) > 0.05)  # each image a step further along the hop
    for a in images:
        np.testing.assert_array_equal(a.positions[:-1], initial.positions[:-1])  # slab atoms do not move
        assert (
            a.get_distances(len(a) - 1, list(range(len(a) - 1)), mic=True).min() > 1.5
        )  # H never enters the metal
    assert [a.info["name"] for a in images] == [f"h-hop-image-{k}" for k in range(1, 6)]
    assert [a.info["path_fraction"] for a in images] == pytest.approx([k / 6 for k in range(1, 6)])
    assert all(a.info["role"] == "image" and "site" not in a.info for a in images)
    lengths = path_length(path)
    assert lengths[-1] == pytest.approx(np.linalg.norm(axis), rel=0.1)


def test_idpp_keeps_atoms_apart_where_linear_does_not():
    # two atoms swap places through each other under linear interpolation; IDPP sends them around
    initial = Atoms("H2", positions=[[4, 4, 4], [5.5, 4, 4]], cell=[10, 10, 10], pbc=True)
    final = Atoms("H2", positions=[[5.5, 4.0, 4.0], [4.0, 4.0, 4.0]], cell=[10, 10, 10], pbc=True)
    final.positions[:, 1] += [0.3, -0.3]  # break the symmetry so IDPP has a direction to go round
    linear = neb_images(initial, final, n_images=3, method="linear")
    idpp = neb_images(initial, final, n_images=3, method="idpp")
    assert linear[1].get_distance(0, 1) < 0.4
    assert min(a.get_distance(0, 1) for a in idpp) > linear[1].get_distance(0, 1) + 0.3


def test_neb_is_deterministic_and_checks_end_states():
    initial, final = _hop()
    a = neb_images(initial, final, n_images=3)
    b = neb_images(initial, final, n_images=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.positions, y.positions)
    with pytest.raises(ValueError, match="13 and 12 atoms"):
        neb_images(initial, final[:-1], n_images=3)
    swapped = final.copy()
    swapped.numbers[-1] = 8
    with pytest.raises(ValueError, match="atom 12 is H in the initial and O in the final"):
        neb_images(initial, swapped)
    moved = final.copy()
    moved.positions[0] += 0.5  # a fixed bottom-layer atom
    with pytest.raises(ValueError, match="constrained atoms move"):
        neb_images(initial, moved)
    with pytest.raises(ValueError, match="method"):
        neb_images(initial, final, method="spline")
    with pytest.raises(ValueError, match="n_images"):
        neb_images(initial, final, n_images=0)
