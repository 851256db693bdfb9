"""reactmlip.benchmark and reactmlip.evaluate: real pw.x labels, real CHGNet 0.3.0 and SevenNet-0."""

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

from aiida_reactmlip.calculations.evaluate import EvaluateCalculation
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.models import load_calculator
from aiida_reactmlip.report.evidence import allowed_range, recorded_value
from aiida_reactmlip.workflows.benchmark import BenchmarkWorkChain

pytestmark = [pytest.mark.pwx, pytest.mark.mlip]


@pytest.fixture(scope="module")
def benchmark_node(h2_benchmark):
    assert h2_benchmark.is_finished_ok, h2_benchmark.exit_message
    return h2_benchmark


def test_benchmark_finishes_with_metrics_per_model(benchmark_node):
    node = benchmark_node
    assert node.is_finished_ok, node.exit_message
    assert set(node.outputs.metrics) == {"chgnet", "sevennet"}
    rows = node.outputs.leaderboard["rows"]
    assert [row["model"] for row in rows] == sorted(
        [row["model"] for row in rows], key=lambda m: next(r["force_mae"] for r in rows if r["model"] == m)
    )
    for key, metrics in node.outputs.metrics.items():
        assert metrics["energy_reference"].startswith("relative")
        assert metrics["n_frames_compared"] == 6  # 7 frames, the reference frame excluded
        # The demo's computation (H2 scan, fast protocol): within 5 % of the errors tests/test_demo.py recorded.
        model = node.inputs.models[key].model_name
        for name in ("force_mae", "energy_mae_per_atom"):
            low, high = allowed_range(recorded_value(f"h2_scan_{name}/{model}"))
            assert low <= metrics[name] <= high, f"{model} {name} {metrics[name]:.5f} outside [{low:.5f}, {high:.5f}]"
        assert metrics["force_cosine_similarity"] > 0.9  # H2 forces lie along the bond for every model
        assert metrics["model_uuid"] in {m.uuid for m in node.inputs.models.values()}
        # One system: its own metrics equal the dataset's; a bond scan has no reactive metrics.
        assert metrics["per_system"]["h2-dissociation"]["force_mae"] == pytest.approx(metrics["force_mae"], rel=1e-12)
        assert metrics["reactive"] == {}


def test_predictions_match_the_ase_calculator_and_metrics_are_recomputable(benchmark_node, registry_models):
    dataset = benchmark_node.outputs.dataset
    atoms_list = dataset.to_atoms()
    for key, name in (("chgnet", "chgnet-0.3.0"), ("sevennet", "sevennet-0")):
        model = registry_models[name]
        predictions = benchmark_node.outputs.predictions[key]
        with model.as_path() as path:
            calc = load_calculator(model.family, path)
            direct_e = []
            direct_f = []
            for atoms in atoms_list:
                atoms = atoms.copy()
                atoms.calc = calc
                direct_e.append(atoms.get_potential_energy())
                direct_f.append(atoms.get_forces())
        np.testing.assert_allclose(predictions.get_array("energies"), direct_e, atol=2e-4)
        np.testing.assert_allclose(predictions.get_array("forces"), np.concatenate(direct_f), atol=2e-3)
        # Recompute the force MAE by hand from the stored arrays.
        mae = np.abs(predictions.get_array("forces") - dataset.frames.forces).mean()
        assert benchmark_node.outputs.metrics[key]["force_mae"] == pytest.approx(mae, rel=1e-9)


def test_every_number_traces_back_to_pw_and_the_model_file(benchmark_node, registry_models):
    metrics = benchmark_node.outputs.metrics["chgnet"]
    calcfunction = metrics.creator
    predictions = calcfunction.inputs.predictions
    evaluate = predictions.creator
    assert evaluate.process_type == "aiida.calculations:reactmlip.evaluate"
    assert evaluate.inputs.model.uuid == registry_models["chgnet-0.3.0"].uuid
    dataset = calcfunction.inputs.dataset
    assert dataset.uuid == evaluate.inputs.dataset.uuid
    for uuid in dataset.source_uuids:
        assert orm.load_node(uuid).process_type == "aiida.calculations:quantumespresso.pw"
    timing = evaluate.outputs.timing.get_dict()
    assert timing["n_frames"] == 7


def test_model_that_does_not_cover_an_element_is_refused_before_running(tmp_path, codes):
    model_file = tmp_path / "tiny.model"
    model_file.write_bytes(b"not a real model, only its metadata matters here")
    model = MlipModelData(file=str(model_file), family="mace", model_name="cu-only", elements=["Cu"]).store()
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[6, 6, 6], pbc=True)
    atoms.info["energy"] = -31.0
    atoms.arrays["forces"] = np.zeros((2, 3))
    dataset = LabelledDatasetData.from_atoms([atoms]).store()
    before = orm.QueryBuilder().append(orm.CalcJobNode).count()
    with pytest.raises(ValueError, match=r"cu-only.*does not cover element\(s\) H"):
        run_get_node(BenchmarkWorkChain, dataset=dataset, models={"cu": model}, runner_code=codes["runner"])
    with pytest.raises(ValueError, match=r"cu-only.*does not cover element\(s\) H"):
        run_get_node(EvaluateCalculation, model=model, dataset=dataset, code=codes["runner"])
    assert orm.QueryBuilder().append(orm.CalcJobNode).count() == before
