"""Slabs, sites, adsorption, dissociative adsorption, growth and validation of the shipped systems."""

import time

import numpy as np
import pytest
from ase.build import fcc111
from ase.constraints import FixAtoms

from aiida_reactmlip.systems import (
    ROLES,
    adsorption_energy,
    classify_site,
    describe_system,
    fcc_slab,
    find_sites,
    get_system,
    list_systems,
    validate_configuration,
    validate_configurations,
)
from aiida_reactmlip.systems.surfaces import layers, surface_z

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.parametrize("metal", ["Cu", "Ni", "Pt", "Rh"])
@pytest.mark.parametrize(
    "facet,kinds", [("111", ["top", "bridge", "fcc", "hcp"]), ("100", ["top", "bridge", "hollow"])]
)
def test_distinct_sites_per_facet(metal, facet, kinds):
    slab = fcc_slab(metal, facet)
    sites = find_sites(slab)
    assert list(sites) == kinds  # 111: 4 distinct sites, 100: 3
    nn = slab.info["lattice_constant"] / np.sqrt(2)
    expected = {
        "top": 0.0,
        "bridge": nn / 2,
        "fcc": nn / np.sqrt(3),
        "hcp": nn / np.sqrt(3),
        "hollow": nn / np.sqrt(2),
    }
    for kind, site in sites.items():
        assert site.distance == pytest.approx(expected[kind], abs=1e-6)
    # a 2x2 cell holds 4 top, 4 fcc, 4 hcp (111) or 4 hollow (100) sites, 3 (111) or 2 (100) bridges per atom
    mult = {k: s.multiplicity for k, s in sites.items()}
    assert mult == (
        {"top": 4, "bridge": 12, "fcc": 4, "hcp": 4}
        if facet == "111"
        else {"top": 4, "bridge": 8, "hollow": 4}
    )


def test_hcp_has_second_layer_atom_below_fcc_has_third():
    slab = fcc_slab("Cu", "111", size=(2, 2, 3))
    lay = layers(slab)
    sites = find_sites(slab)
    for kind, below in (("hcp", 1), ("fcc", 2)):
        xy = np.array(sites[kind].position)
        d = [np.min(np.linalg.norm(slab.positions[lay[k], :2] - xy, axis=1)) for k in (1, 2)]
        assert d[below - 1] < 1e-6 and d[2 - below] > 1.0
    # the same answer as ASE's own site table (fractional positions of the 1x1 cell)
    ref = fcc111("Cu", size=(1, 1, 3), a=3.63, vacuum=6.0)
    cell = ref.info["adsorbate_info"]["cell"]
    for kind in ("fcc", "hcp"):
        xy = np.array(ref.info["adsorbate_info"]["sites"][kind]) @ cell
        assert classify_site(slab, xy)[0] == kind


def test_slab_tags_constraints_and_magnetism():
    slab = fcc_slab("Ni", "100", size=(2, 2, 4))
    (fix,) = slab.constraints
    assert isinstance(fix, FixAtoms)
    fixed = sorted(fix.get_indices())
    assert len(fixed) == 8 and all(
        slab.positions[fixed, 2] < slab.positions[:, 2].min() + 2.0
    )  # bottom 2 layers
    assert slab.info["spin_polarised"] and slab.get_initial_magnetic_moments().sum() == pytest.approx(
        0.6 * 16
    )
    assert "spin_polarised" not in fcc_slab("Cu").info
    assert slab.pbc.all()


@pytest.mark.parametrize("adsorbate", ["H", "O", "N", "C", "OH", "CO"])
@pytest.mark.parametrize("metal,facet", [("Cu", "111"), ("Pt", "100"), ("Rh", "111"), ("Ni", "100")])
def test_adsorbate_heights_and_bonds(adsorbate, metal, facet):
    system = get_system(f"{adsorbate.lower()}-on-{metal.lower()}{facet}")
    refs = system.by_role("reference")
    assert refs[0].info["kind"] == "slab" and len(refs) >= 2  # slab + gas molecules
    adsorbed = system.by_role("final")
    assert [a.info["site"] for a in adsorbed] == (
        ["top", "bridge", "fcc", "hcp"] if facet == "111" else ["top", "bridge", "hollow"]
    )
    n_slab = len(refs[0])
    z0 = surface_z(refs[0])
    for atoms in adsorbed:
        binding = atoms.positions[n_slab]
        height = binding[2] - z0
        assert 0.5 <= height <= 2.3, (atoms.info["name"], height)  # stated range of heights (Å)
        assert height == pytest.approx(atoms.info["height"])
        d_metal = atoms.get_distances(n_slab, list(range(n_slab)), mic=True).min()
        assert 1.6 <= d_metal <= 2.3, (atoms.info["name"], d_metal)  # metal-adsorbate bond (Å)
        assert atoms.info["dipole_correction_recommended"] is True
        assert atoms.info["adsorption_energy_definition"].startswith(f"E_ads({adsorbate})")
        assert len(atoms.constraints) == 1
    top = next(a for a in adsorbed if a.info["site"] == "top")
    hollow = next(a for a in adsorbed if a.info["site"] in ("fcc", "hollow"))
    assert top.info["height"] > hollow.info["height"]  # atoms sink into hollows


def test_adsorption_energy_definitions():
    e_h2, e_h2o, e_o2 = -31.0, -467.0, -864.0
    res = adsorption_energy(-1000.0, -997.0, {"H2": e_h2}, "H")
    assert res.energy == pytest.approx(-1000.0 + 997.0 + 15.5)
    assert res.definition == "E_ads(H) = E(slab+H) - E(slab) - [1/2 E(H2)]"
    res = adsorption_energy(-1436.0, -997.0, {"H2": e_h2, "H2O": e_h2o}, "O")
    assert res.energy == pytest.approx(-1436.0 + 997.0 - (e_h2o - e_h2))
    assert res.definition == "E_ads(O) = E(slab+O) - E(slab) - [E(H2O) - E(H2)]"
    res = adsorption_energy(-1436.0, -997.0, {"O2": e_o2}, "O", scheme={"O2": 0.5})
    assert res.energy == pytest.approx(-1436.0 + 997.0 + 432.0)
    with pytest.raises(KeyError, match="H2O"):
        adsorption_energy(0.0, 0.0, {"H2": e_h2}, "O")
    with pytest.raises(ValueError, match="composition"):
        adsorption_energy(0.0, 0.0, {"H2": e_h2}, "O", scheme={"H2": 1.0})


def test_o_adsorption_ships_its_references():
    system = get_system("o-on-pt111")
    names = system.names
    assert names[:3] == ["pt111-slab", "h2o-gas", "h2-gas"]
    assert "E(H2O) - E(H2)" in system.parameters["adsorption_energy_definition"]
    o2 = get_system("o-on-pt111", scheme={"O2": 0.5}).by_role("reference")[1]
    assert o2.info["multiplicity"] == 3 and o2.get_initial_magnetic_moments().sum() == pytest.approx(2.0)


@pytest.mark.parametrize(
    "name,element,nn", [("h2-on-cu111", "H", 3.63 / np.sqrt(2)), ("o2-on-pt111", "O", 3.97 / np.sqrt(2))]
)
def test_dissociative_adsorption_end_states_and_images(name, element, nn):
    system = get_system(name)
    (initial,), (final,) = system.by_role("initial"), system.by_role("final")
    images = system.by_role("image")
    assert len(images) == 5
    slab = system.configurations[0]
    z0 = surface_z(slab)
    assert initial.get_distance(-1, -2, mic=True) == pytest.approx(
        system.configurations[1].get_distance(0, 1)
    )
    assert initial.positions[-2:, 2] - z0 == pytest.approx([2.5, 2.5])  # flat molecule 2.5 Å up
    assert final.get_distance(-1, -2, mic=True) == pytest.approx(nn)  # neighbouring fcc hollows
    for k in (-1, -2):
        assert classify_site(slab, final.positions[k, :2])[0] == "fcc"
    path = [initial, *images, final]
    bond = [a.get_distance(-1, -2, mic=True) for a in path]
    assert np.all(np.diff(bond) > 0)  # the molecule breaks monotonically along the IDPP path
    np.testing.assert_array_equal(images[0].positions[: len(slab)], slab.positions)  # fixed slab untouched
    if element == "O":
        assert initial.info["spin_polarised"] and initial.get_initial_magnetic_moments()[
            -2:
        ].sum() == pytest.approx(2.0)


def test_ch4_scan():
    system = get_system("ch4-dissociation")
    d = [a.get_distance(0, 1) for a in system.configurations]
    assert d == pytest.approx([0.93, 1.01, 1.05, 1.09, 1.13, 1.21, 1.39, 1.70, 2.00])
    other = [sorted(a.get_distances(0, [2, 3, 4])) for a in system.configurations]
    assert np.allclose(other, other[0])  # only one C-H bond changes


def test_h_h2_exchange_band_passes_the_symmetric_saddle():
    system = get_system("h-h2-exchange", n_images=3)
    frames = system.configurations
    assert [a.info["role"] for a in frames] == ["initial", "image", "image", "image", "final"]
    names = [a.info["name"] for a in frames]
    assert names == sorted(names)  # start structures are taken in key order: the path order
    r_ab = [a.get_distance(0, 1) for a in frames]
    r_bc = [a.get_distance(1, 2) for a in frames]
    assert r_ab[0] == pytest.approx(0.75) and r_bc[0] == pytest.approx(2.13)
    assert r_ab[::-1] == pytest.approx(r_bc)  # the final state mirrors the initial one
    assert r_ab[2] == pytest.approx(r_bc[2]) == pytest.approx(0.75 + 0.26 * np.log(2))  # bond orders 1/2, 1/2
    assert all(a.info["multiplicity"] == 2 for a in frames)


@pytest.mark.parametrize("metal", ["Cu", "Pt"])
def test_adatom_hop_111(metal):
    system = get_system(f"{metal.lower()}-adatom-{metal.lower()}111")
    (slab, bulk) = system.by_role("reference")
    (initial,), (final,) = system.by_role("initial"), system.by_role("final")
    a = slab.info["lattice_constant"]
    nn = a / np.sqrt(2)
    assert classify_site(slab, initial.positions[-1, :2])[0] == "fcc"
    assert classify_site(slab, final.positions[-1, :2])[0] == "hcp"
    for state in (initial, final):
        assert state.get_distances(-1, list(range(len(slab))), mic=True).min() == pytest.approx(
            nn
        )  # bulk-like bonds
    hop = np.linalg.norm(final.positions[-1] - initial.positions[-1])
    assert hop == pytest.approx(nn / np.sqrt(3))
    assert bulk.info["kind"] == "bulk" and len(bulk) == 1


def test_clusters_and_si_adatom():
    system = get_system("cu-cluster-cu111")
    by_name = {a.info["name"]: a for a in system.configurations}
    n = len(by_name["cu111-slab"])
    dimer, trimer = by_name["cu-cluster-cu111-dimer"], by_name["cu-cluster-cu111-trimer"]
    nn = 3.63 / np.sqrt(2)
    assert dimer.get_distance(n, n + 1, mic=True) == pytest.approx(nn)
    tri = [trimer.get_distance(i, j, mic=True) for i, j in ((n, n + 1), (n, n + 2), (n + 1, n + 2))]
    assert tri == pytest.approx([nn] * 3)  # compact equilateral trimer
    l_shape = get_system("cu-cluster-cu100").by_role("final")[1]
    sides = sorted(l_shape.get_distance(i, j, mic=True) for i, j in ((n, n + 1), (n, n + 2), (n + 1, n + 2)))
    assert sides == pytest.approx([nn, nn, nn * np.sqrt(2)])
    with pytest.raises(ValueError, match="3x3"):
        get_system("cu-cluster-cu111", size=(2, 2, 3))
    si = get_system("si-adatom-si001")
    (initial,) = si.by_role("initial")
    d = np.sort(initial.get_distances(-1, list(range(len(initial) - 1)), mic=True))
    assert d[:2] == pytest.approx([np.sqrt(3) * 5.47 / 4] * 2)  # two bulk Si-Si bonds at the epitaxial site
    assert d[2] > 3.0


def test_every_shipped_system_is_tagged_valid_and_fast():
    names = list_systems()
    assert len(names) >= 70
    for name in names:
        start = time.perf_counter()
        system = get_system(name)
        assert time.perf_counter() - start < 1.0, name
        assert describe_system(name)["category"] == system.category
        validate_configurations(system.configurations)  # no atoms closer than 0.5 Å, slabs with vacuum
        for atoms in system.configurations:
            assert atoms.info["system"] == name and atoms.info["role"] in ROLES
            d = atoms.get_all_distances(mic=True)
            np.fill_diagonal(d, np.inf)
            floor = 0.5 if atoms.info["role"] == "scan" else 0.7  # scans compress bonds on purpose
            assert d.min() > floor, (atoms.info["name"], d.min())


def test_unknown_system_lists_the_names():
    with pytest.raises(KeyError) as info:
        get_system("h-on-au111")
    for name in ("h-on-cu111", "o2-on-pt111", "si-adatom-si001"):
        assert name in str(info.value)
    with pytest.raises(KeyError, match="available"):
        describe_system("nope")


def test_validation_errors_name_the_problem():
    slab = fcc_slab("Cu", "111")
    validate_configuration(slab)
    bulk_like = slab.copy()
    bulk_like.info = dict(slab.info)
    bulk_like.cell[2] = [0, 0, 3 * 3.63 / np.sqrt(3)]  # c = three layer spacings: no vacuum
    bulk_like.center(axis=2)
    with pytest.raises(ValueError, match=r"slab without vacuum: .* 2\.10 Å along c, less than 5 Å"):
        validate_configuration(bulk_like, min_distance=0.5)
    crowded = get_system("h-on-cu111").by_role("final")[0].copy()
    crowded.positions[-1] = crowded.positions[8] + [0.0, 0.0, 0.3]  # H 0.3 Å above a top-layer Cu
    with pytest.raises(
        ValueError, match=r"overlapping atoms .*atoms 8 \(Cu\) and 12 \(H\) are 0\.3000 Angstrom apart"
    ):
        validate_configuration(crowded)
