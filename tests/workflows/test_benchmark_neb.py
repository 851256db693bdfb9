"""reactmlip.benchmark with a DFT NEB: every model's own NEB between the same end states, barrier errors.

The reaction is the collinear H + H2 -> H2 + H exchange of tests/workflows/test_neb_h3.py: real neb.x
(fast protocol, a light density cutoff), real CHGNet 0.3.0 through ``reactmlip.neb``.
"""

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.calculators.emt import EMT

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.report.benchmark_report import write_benchmark_report
from aiida_reactmlip.workflows.benchmark import BenchmarkWorkChain

SERIAL = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}
BOX = (6.0, 6.0, 9.0)


def h3(r_ab: float, r_bc: float):
    from ase import Atoms

    centre = np.array(BOX) / 2
    return Atoms("H3", positions=centre + [[0, 0, -r_ab], [0, 0, 0], [0, 0, r_bc]], cell=BOX, pbc=True)


def bond_order_band(orders):
    """Pauling's bond-order-conserving path n_AB + n_BC = 1, r = 0.75 Å - 0.26 Å ln n (as test_neb_h3)."""
    return [h3(0.75 - 0.26 * np.log(n), 0.75 - 0.26 * np.log(1 - n)) for n in orders]


def emt_dataset() -> LabelledDatasetData:
    """A stand-in labelled dataset (EMT) of the two end states; the NEB comparison does not use it."""
    frames = []
    for k, atoms in enumerate(bond_order_band([0.005, 0.995])):
        atoms.calc = EMT()
        atoms.info.update({"energy": atoms.get_potential_energy(), "system": "h3", "name": f"end-{k}",
                           "role": "initial" if k == 0 else "final"})
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
    return LabelledDatasetData.from_atoms(frames).store()


def dft_neb_inputs(codes, pseudo_family, **extra) -> dict:
    band = bond_order_band([0.005, 0.25, 0.5, 0.75, 0.995])
    return {
        "images": orm.TrajectoryData(structurelist=[orm.StructureData(ase=a) for a in band]),
        "code": codes["neb"],
        "pseudo_family": orm.Str(pseudo_family.label),
        "protocol": orm.Str("fast"),
        "multiplicity": orm.Int(2),
        "parameter_overrides": orm.Dict({"SYSTEM": {"ecutrho": 120.0}}),
        "options": orm.Dict(SERIAL),
        **extra,
    }


@pytest.mark.pwx
@pytest.mark.mlip
@pytest.mark.slow
def test_mlip_neb_against_dft_neb(codes, pseudo_family, registry_models, tmp_path):
    _, node = run_get_node(
        BenchmarkWorkChain,
        dataset=emt_dataset(),
        models={"chgnet": registry_models["chgnet-0.3.0"]},
        runner_code=codes["runner"],
        # the band's end states are kept as given (relax_end_states now defaults to true): the subject here is
        # the model's NEB against neb.x on the same end states
        dft_neb=dft_neb_inputs(codes, pseudo_family, relax_end_states=orm.Bool(False)),
    )
    assert node.is_finished_ok, node.exit_message
    (dft,) = [n for n in node.called if n.process_label == "DftNebWorkChain"]
    compare = node.outputs.neb.chgnet
    mlip = compare.creator.inputs.mlip_profile.creator
    assert mlip.process_type == "aiida.calculations:reactmlip.neb"
    assert mlip.inputs.model.uuid == registry_models["chgnet-0.3.0"].uuid

    # the model's NEB ran between the DFT NEB's end states, with as many images and a climbing image
    dft_band = dft.outputs.band.get_positions()
    ends = mlip.inputs.images.frames.positions.reshape(2, 3, 3)
    np.testing.assert_allclose(ends, dft_band[[0, -1]], atol=1e-10)
    settings = mlip.inputs.settings.get_dict()
    assert settings["n_images"] == 3 and settings["climb"] is True and settings["relax_endpoints"] is False
    profile = mlip.outputs.profile.get_dict()
    assert profile["n_images"] == 5 and profile["converged"]

    # the barrier errors are the differences of the stored barriers
    dft_barrier = dft.outputs.barrier.value
    assert compare["dft_neb_barrier_eV"] == pytest.approx(dft_barrier, abs=1e-12)
    assert compare["mlip_neb_barrier_eV"] == pytest.approx(profile["barrier"], abs=1e-12)
    assert compare["neb_barrier_error_eV"] == pytest.approx(profile["barrier"] - dft_barrier, abs=1e-12)
    # one job per model evaluates the dataset and the DFT band (the model loaded once)
    (evaluation,) = [n for n in node.called if n.process_type == "aiida.calculations:reactmlip.evaluate_many"]
    assert not [n for n in node.called if n.process_type == "aiida.calculations:reactmlip.evaluate"]
    assert evaluation.inputs.datasets.dft_band.uuid == node.outputs.dft_neb_band.uuid
    assert evaluation.inputs.datasets.dataset.uuid == node.outputs.dataset.uuid
    assert evaluation.outputs.predictions.model.dataset.uuid == node.outputs.predictions.chgnet.uuid
    timing = evaluation.outputs.timing.get_dict()
    assert timing["n_models"] == 1 and sorted(timing["evaluations"]) == ["model.dataset", "model.dft_band"]
    on_band = evaluation.outputs.predictions.model.dft_band.get_array("energies")
    assert len(on_band) == 5
    assert compare["dft_band_barrier_error_eV"] == pytest.approx(on_band.max() - on_band[0] - dft_barrier, abs=1e-9)
    # the DFT band dataset carries the neb.x image energies
    np.testing.assert_allclose(node.outputs.dft_neb_band.frames.energies,
                               dft.outputs.energy_profile.get_array("energies"), rtol=0, atol=1e-10)
    row = node.outputs.leaderboard["rows"][0]
    assert row["neb_barrier_error"] == compare["neb_barrier_error_eV"]
    assert row["dft_band_barrier_error"] == compare["dft_band_barrier_error_eV"]
    # the symmetric exchange has its saddle in the middle for DFT and the model alike
    assert compare["neb"]["dft_highest_image"] == 2
    print(f"H+H2: DFT NEB barrier {dft_barrier:.3f} eV, CHGNet NEB {profile['barrier']:.3f} eV "
          f"(error {compare['neb_barrier_error_eV']:+.3f} eV), CHGNet on the DFT band "
          f"{compare['model_dft_band_barrier_eV']:.3f} eV")

    files = write_benchmark_report(node, tmp_path / "report")
    assert files["neb_profile.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "chgnet-0.3.0" in files["neb.md"].read_text()
    assert 'id="neb"' in files["index.html"].read_text()


@pytest.mark.pwx
@pytest.mark.mlip
def test_failed_dft_neb_is_an_exit_code_and_the_rest_is_stored(codes, pseudo_family, registry_models):
    """One neb.x step, no restart: the DFT NEB fails; the benchmark says so (440) and still stores its metrics.

    As in test_neb_h3: a linear 3-image band whose middle image (1.375 Å bonds) is far from the saddle
    (0.93 Å), so that one step cannot converge it.
    """
    inputs = dft_neb_inputs(codes, pseudo_family, path_overrides=orm.Dict({"nstep_path": 1}),
                            max_iterations=orm.Int(1), num_images=orm.Int(3), interpolation=orm.Str("linear"))
    del inputs["images"]
    for key, atoms in (("initial", h3(0.75, 2.0)), ("final", h3(2.0, 0.75))):
        inputs[key] = orm.StructureData(ase=atoms).store()
        inputs[key].base.extras.set("multiplicity", 2)
    _, node = run_get_node(BenchmarkWorkChain, dataset=emt_dataset(), runner_code=codes["runner"],
                           models={"chgnet": registry_models["chgnet-0.3.0"]}, dft_neb=inputs)
    assert node.exit_status == BenchmarkWorkChain.exit_codes.ERROR_DFT_NEB_FAILED.status
    assert "DftNebWorkChain<" in node.exit_message and "no NEB barrier error" in node.exit_message
    assert "chgnet" in node.outputs.metrics and "leaderboard" in node.outputs
    assert "neb" not in node.outputs and "dft_neb_band" not in node.outputs
    assert not [n for n in node.called if n.process_label == "MlipNebCalculation"]
