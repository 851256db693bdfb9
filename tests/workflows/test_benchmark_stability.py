"""reactmlip.benchmark with ``relax_minima``: every model relaxes the DFT minima; stability metrics per model.

The labels here come from ASE's EMT (a stand-in for DFT: fast, deterministic); the models are the real
CHGNet 0.3.0 and SevenNet-0, relaxed through the real ``reactmlip.relax`` CalcJob.
"""

import json

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import add_adsorbate, fcc111
from ase.calculators.emt import EMT

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.metrics.reactive import stability_summary, structural_stability
from aiida_reactmlip.report.benchmark_report import write_benchmark_report
from aiida_reactmlip.workflows.benchmark import (
    BenchmarkWorkChain,
    fixed_atoms_of_frame,
    leaderboard_rows,
    minima_frames,
)

SLAB_INFO = {"kind": "slab", "metal": "Cu", "facet": "111", "fixed_layers": 1, "system": "h-on-cu"}


def labelled(atoms: Atoms, **info) -> Atoms:
    atoms = atoms.copy()
    atoms.calc = EMT()
    atoms.info.update({"energy": atoms.get_potential_energy(), **info})
    atoms.arrays["forces"] = atoms.get_forces()
    atoms.calc = None
    return atoms


def emt_dataset() -> list[Atoms]:
    """A clean 2x2x2 Cu(111) slab and gas H2 (references), H on its fcc and hcp hollows (end states), the
    midpoint between them (an image), and an H2 bond scan (another system)."""
    slab = fcc111("Cu", size=(2, 2, 2), vacuum=6.0)
    gas = Atoms("H2", positions=[[4, 4, 4], [4, 4, 4.74]], cell=[8, 8, 8], pbc=True)
    frames = [labelled(slab, name="slab", role="reference", **SLAB_INFO),
              labelled(gas, name="h2-gas", role="reference", kind="molecule", system="h-on-cu")]
    sites = {}
    for site in ("fcc", "hcp"):
        atoms = slab.copy()
        add_adsorbate(atoms, "H", 1.0, site)
        sites[site] = atoms
    middle = sites["fcc"].copy()
    middle.positions[-1] = (sites["fcc"].positions[-1] + sites["hcp"].positions[-1]) / 2
    frames += [
        labelled(sites["fcc"], name="h-fcc", role="initial", adsorbate="H", site="fcc", **SLAB_INFO),
        labelled(middle, name="h-bridge", role="image", image_index=1, adsorbate="H", **SLAB_INFO),
        labelled(sites["hcp"], name="h-hcp", role="final", adsorbate="H", site="hcp", **SLAB_INFO),
    ]
    for d in (0.65, 0.80, 1.00):
        h2 = Atoms("H2", positions=[[4, 4, 4], [4, 4, 4 + d]], cell=[8, 8, 8], pbc=True)
        frames.append(labelled(h2, name=f"h2-{d:.2f}", role="scan", system="h2", kind="molecule"))
    return frames


def test_minima_and_their_fixed_atoms():
    dataset = LabelledDatasetData.from_atoms(emt_dataset())
    indices, subset = minima_frames(dataset.frames)
    energies = [dataset.frames.energies[i] for i in (5, 6, 7)]
    lowest_h2 = 5 + int(np.argmin(energies))
    # the lone slab and gas references, both H end states (not the bridge image), the scan's lowest EMT energy
    assert indices == [0, 1, 2, 4, lowest_h2]
    assert [info["dataset_index"] for info in subset.info] == indices
    # slabs: the bottom layer (fcc111 builds it first: atoms 0-3) is kept fixed; H2: nothing
    fixed = [json.loads(info["fixed_atoms"]) if "fixed_atoms" in info else [] for info in subset.info]
    assert fixed == [[0, 1, 2, 3], [], [0, 1, 2, 3], [0, 1, 2, 3], []]
    # an explicit list wins over the layers
    atoms = dataset.to_atoms()[2]
    assert fixed_atoms_of_frame(atoms, {"fixed_atoms": "[8]", "fixed_layers": 1, "kind": "slab"}) == [8]
    assert fixed_atoms_of_frame(atoms, {"fixed_layers": 2, "kind": "slab"}) == list(range(8))


def test_leaderboard_rows_merge_stability_and_neb():
    rows = leaderboard_rows({
        "metrics_b": {"model_name": "model-b", "force_mae": 0.2, "uuid": "mb"},
        "metrics_a": {"model_name": "model-a", "force_mae": 0.1, "uuid": "ma"},
        "stability_a": {"summary": {"rmsd_mean_A": 0.05, "rmsd_max_A": 0.1, "n_minima": 4, "n_changed": 1,
                                    "n_left_site": 1, "n_dissociated": 0, "n_not_converged": 0}, "uuid": "sa"},
        "neb_b": {"neb_barrier_error_eV": -0.02, "dft_band_barrier_error_eV": 0.01, "dft_neb_barrier_eV": 0.1,
                  "mlip_neb_barrier_eV": 0.08, "mlip_neb_converged": True, "uuid": "nb"},
    })
    assert [row["model"] for row in rows] == ["model-a", "model-b"]  # by force MAE
    assert rows[0]["stability_n_changed"] == 1 and rows[0]["stability_uuid"] == "sa" and "neb_barrier_error" not in rows[0]
    assert rows[1]["neb_barrier_error"] == -0.02 and "stability_rmsd_mean" not in rows[1]
    with pytest.raises(ValueError, match="must start with one of"):
        leaderboard_rows({"chgnet": {"uuid": "x"}})


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        (lambda: {"relax_settings": orm.Dict({"fixed_atoms": {"0": [1]}})}, "fixed_atoms cannot be given"),
        (lambda: {"relax_settings": orm.Dict({"fmax": -1})}, "relax_settings: fmax must be > 0"),
        (lambda: {"mlip_neb_settings": orm.Dict({"nimages": 3})}, r"mlip_neb_settings: unknown neb setting\(s\) nimages"),
        (lambda: {"max_concurrent_jobs": orm.Int(0)}, "max_concurrent_jobs must be >= 1"),
    ],
)
def test_bad_reactive_settings_refused_before_running(codes, registry_models, inputs, match):
    dataset = LabelledDatasetData.from_atoms(emt_dataset()[:2]).store()
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match=match):
        run_get_node(BenchmarkWorkChain, dataset=dataset, models={"chgnet": registry_models["chgnet-0.3.0"]},
                     runner_code=codes["runner"], relax_minima=orm.Bool(True), **inputs())
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


@pytest.fixture(scope="module")
def stability_benchmark(codes, registry_models):
    dataset = LabelledDatasetData.from_atoms(emt_dataset()).store()
    _, node = run_get_node(
        BenchmarkWorkChain,
        dataset=dataset,
        models={"chgnet": registry_models["chgnet-0.3.0"], "sevennet": registry_models["sevennet-0"]},
        runner_code=codes["runner"],
        relax_minima=orm.Bool(True),
        relax_settings=orm.Dict({"fmax": 0.05, "max_steps": 150}),
        max_concurrent_jobs=orm.Int(2),
    )
    return node


@pytest.mark.mlip
def test_minima_relaxed_by_every_model(stability_benchmark, registry_models, tmp_path):
    node = stability_benchmark
    assert node.is_finished_ok, node.exit_message
    minima = node.outputs.minima
    assert [info["name"] for info in minima.frame_info][:4] == ["slab", "h2-gas", "h-fcc", "h-hcp"]
    assert set(node.outputs.stability) == {"chgnet", "sevennet"} and "neb" not in node.outputs
    rows = {row["key"]: row for row in node.outputs.leaderboard["rows"]}
    for key, name in (("chgnet", "chgnet-0.3.0"), ("sevennet", "sevennet-0")):
        stability = node.outputs.stability[key]
        compute = stability.creator
        relaxed = compute.inputs.relaxed
        relax = relaxed.creator
        assert relax.process_type == "aiida.calculations:reactmlip.relax"
        assert relax.inputs.model.uuid == registry_models[name].uuid
        assert relax.inputs.structures.uuid == minima.uuid
        references, moved = minima.to_atoms(), relaxed.to_atoms()
        predictions = node.outputs.predictions[key].get_array("energies")
        frames = stability["frames"]
        assert len(frames) == 5
        for k, (ref, new, result) in enumerate(zip(references, moved, frames)):
            # fixed atoms did not move at all; the numbers are those of the pure function
            fixed = json.loads(minima.frame_info[k].get("fixed_atoms", "[]"))
            assert np.array_equal(new.positions[fixed], ref.positions[fixed])
            by_hand = structural_stability(ref, new)
            assert result["rmsd_A"] == pytest.approx(by_hand["rmsd_A"], abs=1e-12)
            assert result["n_bonds_broken"] == by_hand["n_bonds_broken"]
            assert result.get("adsorbate_left_site") == by_hand.get("adsorbate_left_site")
            # the relaxation goes downhill from the DFT geometry, by the model's own energies
            dataset_index = minima.frame_info[k]["dataset_index"]
            assert result["relaxation_energy_eV"] == pytest.approx(
                new.get_potential_energy() - predictions[dataset_index], abs=1e-9)
            assert result["relaxation_energy_eV"] < 1e-4
            assert result["converged"]
        assert frames[0]["rmsd_A"] < 0.3  # the clean slab moves a little, no more
        if frames[0]["steps"] == 0:  # already below fmax: not a single atom moved
            assert frames[0]["rmsd_A"] == 0.0 and frames[0]["relaxation_energy_eV"] == pytest.approx(0.0, abs=1e-9)
        assert frames[2]["adsorbate_site_reference"] == "fcc" and frames[3]["adsorbate_site_reference"] == "hcp"
        assert not frames[1]["dissociated"]  # gas H2 relaxed: still a molecule
        summary = stability["summary"]
        assert summary == pytest.approx(stability_summary(frames))
        row = rows[key]
        assert row["stability_rmsd_mean"] == pytest.approx(np.mean([f["rmsd_A"] for f in frames]))
        assert row["stability_n_minima"] == 5 and row["stability_n_changed"] == summary["n_changed"]
        print(f"{name}: " + "; ".join(f"{f['name']} RMSD {f['rmsd_A']:.3f} Å, dE {f['relaxation_energy_eV']:+.3f} eV, "
                                      f"site {f.get('adsorbate_site_relaxed', '-')}, changed {f['changed']}" for f in frames))

    files = write_benchmark_report(node, tmp_path / "report")
    markdown = files["stability.md"].read_text()
    assert "chgnet-0.3.0" in markdown and "sevennet-0" in markdown and "h-hcp" in markdown
    page = files["index.html"].read_text()
    assert 'id="stability"' in page and "relaxed minima RMSD" in page
    assert "neb.md" not in files
