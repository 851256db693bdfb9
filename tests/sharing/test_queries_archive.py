"""Queries (datasets, models, best model, provenance) and archives of a study into a fresh profile."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from aiida import orm

from aiida_reactmlip.calculations.functions import compute_metrics
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.sharing import queries

from .conftest import invoke

BIN = pathlib.Path(sys.executable).parent


def _predictions(dataset, force_shift, energy_shift):
    """Fake MLIP predictions: DFT forces + ``force_shift`` (eV/Å) on every component, energies + shift x index."""
    frames = dataset.frames
    predictions = orm.ArrayData()
    predictions.set_array("energies", frames.energies + energy_shift * np.arange(len(frames)))
    predictions.set_array("forces", frames.forces + force_shift)
    predictions.set_array("stress", np.full((len(frames), 6), np.nan))
    return predictions


@pytest.fixture(scope="module")
def study(h2_scan_label, tmp_path_factory):
    """The real pw.x H2 scan, a base model, a model fine-tuned from it, and the metrics of both."""
    dataset = h2_scan_label.outputs.dataset
    folder = tmp_path_factory.mktemp("models")
    (folder / "base.model").write_bytes(b"base model weights " + os.urandom(16))
    (folder / "tuned.model").write_bytes(b"fine-tuned weights " + os.urandom(16))
    base = MlipModelData(file=str(folder / "base.model"), family="mace", model_name="mace-share-base",
                         elements=["H", "O"], source="test").store()
    tuned = MlipModelData(file=str(folder / "tuned.model"), family="mace", model_name="mace-share-tuned",
                          elements=["H", "O"], base_model_uuid=base, training_dataset_uuid=dataset).store()
    settings = orm.Dict({"energy_reference": "relative:min"})
    metrics = {
        "base": compute_metrics(dataset, _predictions(dataset, 0.05, 0.01), settings, base),
        "tuned": compute_metrics(dataset, _predictions(dataset, 0.01, 0.002), settings, tuned),
    }
    return {"workchain": h2_scan_label, "dataset": dataset, "base": base, "tuned": tuned, "metrics": metrics}


@pytest.mark.pwx
def test_find_datasets_by_elements_functional_system_size(study):
    dataset = study["dataset"]
    n = dataset.n_frames
    assert n == 7
    uuids = lambda nodes: {node.uuid for node in nodes}  # noqa: E731
    assert dataset.uuid in uuids(queries.find_datasets(elements=["H"], functional="PBE", system="h2-dissociation",
                                                       min_frames=n, max_frames=n, exact_elements=True))
    assert dataset.uuid not in uuids(queries.find_datasets(elements=["H", "O"]))
    assert dataset.uuid not in uuids(queries.find_datasets(functional="PBEsol"))
    assert dataset.uuid not in uuids(queries.find_datasets(system="co-dissociation"))
    assert dataset.uuid not in uuids(queries.find_datasets(min_frames=n + 1))
    assert queries.dataset_functionals(dataset) == ["PBE"]
    result = invoke("query", "datasets", "--elements", "H", "--functional", "pbe", "--system", "h2-dissociation",
                    "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert dataset.uuid in {row["uuid"] for row in rows}
    assert all(row["functional"] == "PBE" for row in rows)


@pytest.mark.pwx
def test_find_models_by_family_and_base(study):
    base, tuned = study["base"], study["tuned"]
    by_base = queries.find_models(base_model="mace-share-base")
    assert [m.uuid for m in by_base] == [tuned.uuid]
    assert [m.uuid for m in queries.find_models(base_model=base.uuid)] == [tuned.uuid]
    mace = {m.uuid for m in queries.find_models(family="MACE")}
    assert {base.uuid, tuned.uuid} <= mace
    assert not {base.uuid, tuned.uuid} & {m.uuid for m in queries.find_models(family="chgnet")}
    result = invoke("query", "models", "--base-model", "mace-share-base", "--json")
    assert result.exit_code == 0 and json.loads(result.output)[0]["uuid"] == tuned.uuid


@pytest.mark.pwx
def test_best_model_by_metric(study):
    best = queries.best_model("h2-dissociation", "force_mae")
    ranking = [row for row in best["ranking"] if row["model_name"].startswith("mace-share")]
    assert [row["model_name"] for row in ranking] == ["mace-share-tuned", "mace-share-base"]
    assert ranking[0]["value"] == pytest.approx(0.01, abs=1e-12)  # every component shifted by 0.01 eV/Å
    assert ranking[1]["value"] == pytest.approx(0.05, abs=1e-12)
    by_energy = queries.best_model("h2-dissociation", "energy_mae_per_atom")
    names = [r["model_name"] for r in by_energy["ranking"] if r["model_name"].startswith("mace-share")]
    assert names == ["mace-share-tuned", "mace-share-base"]
    result = invoke("query", "best-model", "h2-dissociation", "--metric", "force_mae")
    assert result.exit_code == 0, result.output
    assert "best for h2-dissociation by force_mae" in result.output
    missing = invoke("query", "best-model", "h2-dissociation", "--metric", "force_maee")
    assert missing.exit_code != 0 and "numeric metrics available" in missing.output and "force_mae" in missing.output
    nosys = invoke("query", "best-model", "no-such-system")
    assert nosys.exit_code != 0 and "no labelled dataset of system 'no-such-system'" in nosys.output


@pytest.mark.pwx
def test_provenance_of_a_metric(study):
    metrics = study["metrics"]["tuned"]
    tree = queries.provenance(metrics)
    assert tree["kind"] == "metrics" and tree["values"]["force_mae"] == metrics["force_mae"]
    assert tree["model"]["sha256"] == study["tuned"].sha256 and tree["model"]["filename"] == "tuned.model"
    runs = tree["dataset"]["dft_runs"]
    assert len(runs) == 7
    sources = study["dataset"].source_uuids
    for run, uuid in zip(runs, sources):
        calc = orm.load_node(uuid)
        assert run["pk"] == calc.pk and run["process_label"] == "PwCalculation"
        assert run["functional"] == "PBE" and run["ecutwfc"] > 0 and run["dft_code"] == "Quantum ESPRESSO pw.x"
    model_tree = queries.provenance(study["tuned"])
    assert model_tree["base_model"]["file"]["uuid"] == study["base"].uuid
    assert model_tree["training_dataset"]["kind"] == "dataset"
    result = invoke("query", "provenance", metrics.pk)
    assert result.exit_code == 0, result.output
    assert "PwCalculation<" in result.output and study["tuned"].sha256 in result.output
    wrong = invoke("query", "provenance", orm.Int(3).store().pk)
    assert wrong.exit_code != 0 and "provenance is traced for metrics" in wrong.output


DUMP = textwrap.dedent("""
    import json, sys
    from aiida import load_profile, orm
    load_profile()
    from aiida_reactmlip.data.dataset import LabelledDatasetData
    from aiida_reactmlip.data.model import MlipModelData
    out = {"datasets": {}, "models": {}, "metrics": {}}
    for node in orm.QueryBuilder().append(LabelledDatasetData).all(flat=True):
        f = node.frames
        out["datasets"][node.uuid] = {"energies": f.energies.tolist(), "forces": f.forces.tolist(),
                                      "positions": f.positions.tolist(), "info": f.info}
    for node in orm.QueryBuilder().append(MlipModelData).all(flat=True):
        with node.open(mode="rb") as handle:
            content = handle.read().hex()
        out["models"][node.uuid] = {"attributes": node.base.attributes.all, "content": content}
    qb = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={"attributes.function_name": "compute_metrics"},
                                   tag="f").append(orm.Dict, with_incoming="f")
    for node in qb.all(flat=True):
        out["metrics"][node.uuid] = node.get_dict()
    json.dump(out, sys.stdout)
""")


@pytest.mark.pwx
def test_archive_of_study_imports_identically_into_fresh_profile(study, tmp_path, aiida_profile):
    from aiida.manage.configuration import get_config

    archive = tmp_path / "study.aiida"
    nodes = [study["workchain"], *study["metrics"].values(), study["base"], study["tuned"]]
    # The real `verdi archive create`, on the session's own profile.
    session_env = {**os.environ, "AIIDA_PATH": str(pathlib.Path(get_config().dirpath).parent)}
    created = subprocess.run(
        [str(BIN / "verdi"), "-p", aiida_profile.name, "archive", "create", "-N", *(str(n.pk) for n in nodes),
         "--", str(archive)],
        env=session_env, capture_output=True, text=True, timeout=300,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    env = {**os.environ, "AIIDA_PATH": str(tmp_path / "fresh")}
    setup = subprocess.run([str(BIN / "verdi"), "profile", "setup", "core.sqlite_dos", "-n", "--profile-name", "fresh",
                            "--email", "share@test", "--first-name", "S", "--last-name", "T", "--institution", "T",
                            "--set-as-default", "--broker", "none"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    imported = subprocess.run([str(BIN / "verdi"), "archive", "import", str(archive)], env=env,
                              capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    dumped = subprocess.run([sys.executable, "-c", DUMP], env=env, capture_output=True, text=True, timeout=300)
    assert dumped.returncode == 0, dumped.stderr
    fresh = json.loads(dumped.stdout)

    dataset = study["dataset"]
    frames = dataset.frames
    copy = fresh["datasets"][dataset.uuid]
    assert np.array_equal(np.array(copy["energies"]), frames.energies)  # exact, not approximately
    assert np.array_equal(np.array(copy["forces"]), frames.forces)
    assert np.array_equal(np.array(copy["positions"]), frames.positions)
    assert copy["info"] == frames.info
    for key in ("base", "tuned"):
        model = study[key]
        assert fresh["models"][model.uuid]["attributes"] == model.base.attributes.all
        with model.open(mode="rb") as handle:
            assert fresh["models"][model.uuid]["content"] == handle.read().hex()
    for node in study["metrics"].values():
        assert fresh["metrics"][node.uuid] == node.get_dict()
