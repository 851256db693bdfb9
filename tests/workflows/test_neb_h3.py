"""reactmlip.dft_neb: the collinear H + H2 -> H2 + H exchange with real neb.x, and bad input refused."""

import time

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

from aiida_reactmlip.report.evidence import RECORD_ENV, allowed_range, regression_entry
from aiida_reactmlip.workflows.dft_neb import DftNebWorkChain, interpolate_band

#: Recorded by this command; each test compares its barrier with docs/results/regression-values.json.
RECORD = (f"{RECORD_ENV}=1 .venv/bin/python -m pytest -p no:cacheprovider tests/workflows/test_neb_h3.py"
          " -k 'exchange_barrier or end_states_optimised'")
SERIAL = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}
BOX = (6.0, 6.0, 9.0)  # Å; the collinear H3 lies along z


def h3(r_ab: float, r_bc: float) -> Atoms:
    """Collinear H_A-H_B-H_C with H_B at the centre of the box; distances in Å."""
    centre = np.array(BOX) / 2
    return Atoms("H3", positions=centre + [[0, 0, -r_ab], [0, 0, 0], [0, 0, r_bc]], cell=BOX, pbc=True)


def bond_order_band(orders) -> list[Atoms]:
    """Images along Pauling's bond-order-conserving path n_AB + n_BC = 1, r = r0 - 0.26 Å ln n.

    A cheap first guess that already bends through the symmetric saddle region (r_AB = r_BC = 0.93 Å),
    so the climbing image needs few iterations.
    """
    r0 = 0.75
    return [h3(r0 - 0.26 * np.log(n), r0 - 0.26 * np.log(1 - n)) for n in orders]


def _structure(atoms, **extras):
    node = orm.StructureData(ase=atoms).store()
    node.base.extras.set_many(extras)
    return node


def run_three_image_neb(codes, pseudo_family, initial, final, **extra):
    """neb.x between two H3 end states, one image between them (linear), fast protocol with a light
    density cutoff (120 Ry), serial; ``extra`` inputs of DftNebWorkChain on top. Returns the node."""
    _, node = run_get_node(
        DftNebWorkChain, initial=initial, final=final, num_images=orm.Int(3), interpolation=orm.Str("linear"),
        code=codes["neb"], pseudo_family=orm.Str(pseudo_family.label), protocol=orm.Str("fast"),
        parameter_overrides=orm.Dict({"SYSTEM": {"ecutrho": 120.0}}), options=orm.Dict(SERIAL), **extra,
    )
    return node


@pytest.mark.pwx
def test_h_plus_h2_exchange_barrier(codes, pseudo_family):
    # End states: H2 (0.75 Å) with the third atom 2.13 Å away, and the mirror image.
    band = bond_order_band([0.005, 0.25, 0.5, 0.75, 0.995])
    images = orm.TrajectoryData(structurelist=[orm.StructureData(ase=a) for a in band])
    start = time.perf_counter()
    _, node = run_get_node(
        DftNebWorkChain,
        images=images,
        code=codes["neb"],
        pseudo_family=orm.Str(pseudo_family.label),
        protocol=orm.Str("fast"),
        multiplicity=orm.Int(2),  # H3: three electrons, a doublet
        # Loose band (fast protocol: 0.2 eV/Å) and a lighter density cutoff (dual 4) keep this test near a minute.
        parameter_overrides=orm.Dict({"SYSTEM": {"ecutrho": 120.0}}),
        options=orm.Dict(SERIAL),
    )
    wall = time.perf_counter() - start
    assert node.is_finished_ok, node.exit_message
    barrier = node.outputs.barrier.value
    profile = node.outputs.energy_profile
    energies = profile.get_array("relative_energies")
    highest = profile.base.attributes.get("highest_image")
    # Positive, with the highest image strictly between the end states.
    assert 0 < highest < len(energies) - 1
    # PBE underestimates the exact 0.42 eV barrier of H + H2; the symmetric reaction has equal barriers both ways.
    assert 0.05 < barrier < 0.42
    # Regression: within 0.01 eV of the barrier this test's own neb.x run recorded (same settings, same pw.x).
    recorded = regression_entry("h_h2_neb_barrier_eV", barrier, unit="eV", tolerance=0.01,
                                tolerance_kind="absolute", command=RECORD,
                                test="tests/workflows/test_neb_h3.py::test_h_plus_h2_exchange_barrier")
    low, high = allowed_range(recorded)
    assert low <= barrier <= high, f"barrier {barrier:.4f} eV, recorded {recorded['value']:.4f} ± 0.01 eV"
    assert node.outputs.reverse_barrier.value == pytest.approx(barrier, abs=0.03)
    # The saddle is the symmetric H-H-H with both bonds near 0.93 Å.
    saddle = node.outputs.band.get_step_structure(highest).get_ase()
    d_ab, d_bc = saddle.get_distance(0, 1), saddle.get_distance(1, 2)
    assert d_ab == pytest.approx(d_bc, abs=0.05)
    assert 0.85 < d_ab < 1.0
    # Reaction coordinate in Å increases along the band.
    assert np.all(np.diff(profile.get_array("reaction_coordinate")) > 0)
    params = node.outputs.output_parameters.get_dict()
    print(f"H+H2 NEB: barrier {barrier:.3f} eV, reverse {node.outputs.reverse_barrier.value:.3f} eV, "
          f"saddle r = {d_ab:.3f}/{d_bc:.3f} Å, profile {np.round(energies, 3).tolist()}, "
          f"{params['converged']}, wall {wall:.1f} s")


def test_fixed_atoms_default_to_the_initial_state_extra(aiida_profile):
    from aiida_reactmlip.workflows.dft_neb import band_fixed_atoms

    plain, tagged = _structure(h3(0.75, 1.8)), _structure(h3(0.75, 1.8), fixed_atoms="[1]")
    assert band_fixed_atoms(plain) == []
    assert band_fixed_atoms(tagged) == [1]
    assert band_fixed_atoms(tagged, orm.List([2, 0, 2])) == [0, 2]  # explicit wins, sorted, unique
    # interpolation keeps a fixed atom exactly where the end states have it (IDPP moves it ~0.02 Å here)
    centre = np.array(BOX) / 2
    bent = [Atoms("H3", positions=centre + np.array([a, [0, 0, 0], c]), cell=BOX, pbc=True)
            for a, c in (([0, 0, -0.75], [1.2, 0, 1.2]), ([1.2, 0, -1.2], [0, 0, 0.75]))]
    first, last = _structure(bent[0]), _structure(bent[1])
    free = interpolate_band(first, last, orm.Int(5), orm.Str("idpp")).get_positions()
    fixed = interpolate_band(first, last, orm.Int(5), orm.Str("idpp"), fixed_atoms=orm.List([1])).get_positions()
    assert np.abs(free[1:-1, 1] - first.get_ase().positions[1]).max() > 1e-3
    np.testing.assert_allclose(fixed[:, 1], np.repeat(first.get_ase().positions[1:2], 5, axis=0), atol=1e-12)


@pytest.mark.pwx
def test_end_states_optimised_and_fixed_atom_kept(codes, pseudo_family):
    """relax_end_states (neb.x first_last_opt) with the middle atom fixed (pw.x if_pos 0 0 0).

    End states H2 stretched to 0.85 Å + H at 2.0 Å: neb.x shortens the bonds towards PBE's 0.75 Å while the
    band converges, and the fixed H_B never moves.
    """
    initial = _structure(h3(0.85, 2.0), multiplicity=2, fixed_atoms="[1]")
    final = _structure(h3(2.0, 0.85), multiplicity=2)
    start = time.perf_counter()
    node = run_three_image_neb(codes, pseudo_family, initial, final, relax_end_states=orm.Bool(True))
    wall = time.perf_counter() - start
    (neb,) = [n for n in node.called if n.process_label == "NebBaseWorkChain"]
    calcs = [n for n in neb.called if n.process_label == "NebCalculation"]
    assert calcs[0].inputs.parameters.get_dict()["PATH"]["first_last_opt"] is True
    assert calcs[0].inputs.settings.get_dict()["FIXED_COORDS"] == [[False] * 3, [True] * 3, [False] * 3]
    assert "if_pos" not in calcs[0].inputs.parameters.get_dict()  # the flags go into ATOMIC_POSITIONS
    assert node.is_finished_ok, node.exit_message
    band = node.outputs.band
    centre = initial.get_ase().positions[1]
    for k in range(band.numsteps):
        np.testing.assert_allclose(band.get_step_structure(k).get_ase().positions[1], centre, atol=1e-6)
    first, last = band.get_step_structure(0).get_ase(), band.get_step_structure(band.numsteps - 1).get_ase()
    assert first.get_distance(0, 1) < 0.80 and last.get_distance(1, 2) < 0.80  # relaxed from 0.85 Å
    barrier = node.outputs.barrier.value
    assert 0.05 < barrier < 0.42  # measured from the relaxed initial state; PBE below the exact 0.42 eV
    recorded = regression_entry("h_h2_neb_barrier_relaxed_ends_eV", barrier, unit="eV", tolerance=0.01,
                                tolerance_kind="absolute", command=RECORD,
                                test="tests/workflows/test_neb_h3.py::test_end_states_optimised_and_fixed_atom_kept")
    low, high = allowed_range(recorded)
    assert low <= barrier <= high, f"barrier {barrier:.4f} eV, recorded {recorded['value']:.4f} ± 0.01 eV"
    print(f"H+H2 NEB, end states optimised, H_B fixed: barrier {barrier:.3f} eV, end bonds "
          f"{first.get_distance(0, 1):.3f}/{last.get_distance(1, 2):.3f} Å, wall {wall:.1f} s")


def test_interpolation_keeps_end_states(aiida_profile):
    first, last = _structure(h3(0.75, 1.8)), _structure(h3(1.8, 0.75))
    for method in ("linear", "idpp"):
        band = interpolate_band(first, last, orm.Int(5), orm.Str(method))
        positions = band.get_positions()
        assert positions.shape == (5, 3, 3)
        np.testing.assert_allclose(positions[0], first.get_ase().positions, atol=1e-8)
        np.testing.assert_allclose(positions[-1], last.get_ase().positions, atol=1e-8)
        middle = band.get_step_structure(2).get_ase()
        # By symmetry the middle image is the symmetric H3 for either scheme.
        assert middle.get_distance(0, 1) == pytest.approx(middle.get_distance(1, 2), abs=1e-3)


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        (lambda: {"initial": _structure(h3(0.75, 1.8)), "final": _structure(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.75]], cell=BOX))},
         "initial has 3 atoms, final has 2"),
        (lambda: {"initial": _structure(h3(0.75, 1.8)), "final": _structure(h3(1.8, 0.75)), "num_images": orm.Int(2)},
         "at least 3"),
        (lambda: {"initial": _structure(h3(0.75, 1.8)), "final": _structure(h3(1.8, 0.75)), "interpolation": orm.Str("spline")},
         "unknown interpolation 'spline'"),
        (lambda: {"initial": _structure(h3(0.3, 1.8)), "final": _structure(h3(1.8, 0.75))},
         r"image 0: atoms 0 \(H\) and 1 \(H\) are 0.300 Å apart"),
        (lambda: {"final": _structure(h3(1.8, 0.75))}, "give the end states `initial` and `final`"),
        (lambda: {"initial": _structure(h3(0.75, 1.8)), "final": _structure(h3(1.8, 0.75)), "fixed_atoms": orm.List([1, 5])},
         r"fixed_atoms \[5\] out of range for 3 atoms"),
        (lambda: {"initial": _structure(h3(0.75, 1.8)), "final": _structure(h3(1.8, 0.75)), "fixed_atoms": orm.List([0, 1])},
         r"fixed atom\(s\) \[0\] sit at different positions in the two end states \(up to 1.050 Å\)"),
        (lambda: {"initial": _structure(h3(0.75, 1.8), fixed_atoms="[0, 1, 2]"), "final": _structure(h3(0.75, 1.8))},
         "fixes all 3 atoms"),
        (lambda: {"initial": _structure(h3(0.75, 1.8), fixed_atoms="[1, 'x']"), "final": _structure(h3(1.8, 0.75))},
         "not a JSON list of atom indices"),
    ],
)
def test_bad_neb_input_refused(codes, pseudo_family, inputs, match):
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match=match):
        run_get_node(DftNebWorkChain, code=codes["neb"], pseudo_family=orm.Str(pseudo_family.label),
                     protocol=orm.Str("fast"), **inputs())
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


@pytest.mark.pwx
def test_band_not_converged_is_an_exit_code(codes, pseudo_family):
    """One NEB step allowed and no restart: neb.x stops unconverged, the handlers give up, exit 401 names why."""
    initial = _structure(h3(0.75, 2.0), multiplicity=2)
    final = _structure(h3(2.0, 0.75), multiplicity=2)
    node = run_three_image_neb(codes, pseudo_family, initial, final, path_overrides=orm.Dict({"nstep_path": 1}),
                               max_iterations=orm.Int(1))
    assert node.exit_status == DftNebWorkChain.exit_codes.ERROR_NEB_FAILED.status
    (neb,) = [n for n in node.called if n.process_label == "NebBaseWorkChain"]
    assert neb.exit_status == 401  # BaseRestartWorkChain: maximum iterations exceeded
    (calc,) = [n for n in neb.called if n.process_label == "NebCalculation"]
    assert calc.exit_status == 502  # ERROR_NEB_CYCLE_EXCEEDED_NSTEP
    assert f"NebBaseWorkChain<{neb.pk}> exit status 401" in node.exit_message
    # The interpolated band went to neb.x: 3 images, the middle one halfway.
    band = calc.inputs.images
    assert band.numsteps == 3
    middle = band.get_step_structure(1).get_ase()
    assert middle.get_distance(0, 1) == pytest.approx(1.375, abs=1e-3)


def test_get_neb_builder_from_atoms(codes, pseudo_family):
    from aiida_reactmlip.specs.builders import get_neb_builder

    initial, final = h3(0.75, 2.1), h3(2.1, 0.75)
    initial.info["multiplicity"] = 2
    builder = get_neb_builder(initial, final, protocol="fast", num_images=5, code=codes["neb"],
                              pseudo_family=pseudo_family.label)
    assert builder.initial.base.extras.get("multiplicity") == 2
    assert builder.num_images.value == 5 and builder.protocol.value == "fast"
    assert builder.final.get_ase().get_distance(1, 2) == pytest.approx(0.75)
