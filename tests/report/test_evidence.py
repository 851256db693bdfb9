"""Evidence of loops over seeds (labels to target, mean error, paired tests, the 95 % band plot) from
hand-made loop nodes, and the regression values the tight tests compare with."""

import json

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.report.evidence import (
    RECORD_ENV,
    REGRESSION_VALUES,
    allowed_range,
    loop_evidence,
    record_value,
    recorded_value,
    regression_entry,
    write_loop_evidence,
)

LABELS = [0, 2, 4, 6, 8]
#: force MAE (eV/Å) per seed; target 0.07: committee reaches it at 4, 6, 6 labels; random at 8, never, 8
CURVES = {
    "committee": {0: [0.13, 0.10, 0.068, 0.06, 0.055], 1: [0.13, 0.09, 0.075, 0.065, 0.06],
                  2: [0.13, 0.11, 0.08, 0.069, 0.06]},
    "random": {0: [0.13, 0.11, 0.09, 0.072, 0.066], 1: [0.13, 0.10, 0.085, 0.08, 0.075],
               2: [0.13, 0.12, 0.095, 0.08, 0.068]},
}
POOL_SIZE = 12


def curves_by_strategy() -> dict:
    return {strategy: [{"seed": seed, "n_labels": LABELS, "force_mae": errors} for seed, errors in seeds.items()]
            for strategy, seeds in CURVES.items()}


def test_labels_to_target_mean_error_and_paired_verdict():
    evidence = loop_evidence(curves_by_strategy(), 0.07, censor_at=POOL_SIZE)
    committee, random = evidence["strategies"]["committee"], evidence["strategies"]["random"]
    assert committee["labels_to_target"] == [4, 6, 6] and random["labels_to_target"] == [8, None, 8]
    # trapezoids over 0..8 labels: 0.23 + 0.168 + 0.128 + 0.115 = 0.641, over 8 labels
    assert committee["mean_force_mae"][0] == pytest.approx(0.641 / 8, abs=1e-12)
    comparison = evidence["comparisons"]["committee"]
    labels = comparison["labels_to_target"]
    assert labels["values_b"] == [8, POOL_SIZE, 8] and labels["n_censored_b"] == 1
    # differences -4, -6, -2; the bootstrap means of 3 values run from -6 to -2, each end with probability 1/27
    assert labels["mean_difference"] == pytest.approx(-4) and (labels["ci_low"], labels["ci_high"]) == (-6, -2)
    assert labels["wilcoxon_p"] == pytest.approx(0.25)
    assert comparison["labels_verdict"] == (
        "no significant difference at p < 0.05: committee needs 5.33 ± 1.15 labels, random 9.33 ± 2.31 (mean ± std "
        "over n = 3 seeds), difference -4 [95 % CI -6, -2], Wilcoxon p = 0.25 (3 non-zero paired difference(s) "
        "cannot reach p < 0.05: the smallest possible p is 0.25; 1 of 3 runs of random never reached the target "
        "and count as 12 labels)")
    assert comparison["mean_force_mae"]["mean_difference"] < 0
    band = committee["band"]
    assert band["labels"] == LABELS and band["mean"][2] == pytest.approx((0.068 + 0.075 + 0.08) / 3)
    assert band["method"] == "t" and band["lower"][2] < band["mean"][2] < band["upper"][2]
    assert json.loads(json.dumps(evidence)) == evidence


def test_a_loop_stopped_at_its_target_keeps_its_last_error_over_the_budget():
    curves = curves_by_strategy()
    curves["committee"][0] = {"seed": 0, "n_labels": [0, 2, 4], "force_mae": [0.13, 0.10, 0.068]}  # stopped at 4
    evidence = loop_evidence(curves, 0.07)
    assert evidence["censor_at"] == 8  # no pool size given: the budget
    # (0.23 + 0.168) over 0..4, then 0.068 held for 4 labels: (0.398 + 0.272) / 8
    assert evidence["strategies"]["committee"]["mean_force_mae"][0] == pytest.approx(0.67 / 8, abs=1e-12)
    assert evidence["strategies"]["committee"]["band"]["labels"] == [0, 2, 4]  # the labels every seed has


def _pool(n_frames: int) -> LabelledDatasetData:
    frames = []
    for i in range(n_frames):
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.70 + 0.01 * i]], cell=[8, 8, 8], pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=-31.0 + 0.01 * i, forces=np.zeros((2, 3)))
        atoms.info.update(group="h2", name=f"h2-{i}", system="h2")
        frames.append(atoms)
    return LabelledDatasetData.from_atoms(frames).store()


def _loop_node(pool, strategy: str, seed: int, errors: list) -> orm.WorkflowNode:
    """A finished loop as the report reads it: the pool as input ``label_pool``, the ``summary`` returned."""
    node = orm.WorkflowNode()
    node.base.links.add_incoming(pool, link_type=LinkType.INPUT_WORK, link_label="label_pool")
    node.store()
    rounds = [{"round": r, "n_labels": n, "n_new": 2 if r else 0, "force_mae": e, "energy_mae_per_atom": 0.01,
               "strategy": strategy, "selected": [], "seconds": 1.0} for r, (n, e) in enumerate(zip(LABELS, errors))]
    summary = orm.Dict({"strategy": strategy, "seed": seed, "k": 2, "n_labels": LABELS, "force_mae": errors,
                        "energy_mae_per_atom": [0.01] * len(LABELS), "stop_reason": "budget", "rounds": rounds,
                        "target_force_mae": 0.07}).store()
    summary.base.links.add_incoming(node, link_type=LinkType.RETURN, link_label="summary")
    return node


def test_evidence_files_from_loop_nodes(tmp_path):
    pool = _pool(POOL_SIZE)
    nodes = [_loop_node(pool, strategy, seed, errors) for strategy, seeds in CURVES.items()
             for seed, errors in seeds.items()]
    files = write_loop_evidence(nodes, tmp_path / "report")
    assert sorted(files) == ["evidence.json", "evidence.md", "evidence_band.png"]
    assert files["evidence_band.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evidence = json.loads(files["evidence.json"].read_text())
    assert evidence["target_force_mae"] == 0.07  # the loops' own target
    assert evidence["censor_at"] == POOL_SIZE and evidence["censored_at"] == "pool size"
    assert [entry["uuid"] for entry in evidence["loops"]["random"]] == [n.uuid for n in nodes[3:]]
    markdown = files["evidence.md"].read_text()
    assert "| committee | 0 | 4 | 0.0801 |" in markdown and "| random | 1 | not reached |" in markdown
    assert f"labels to target: {evidence['comparisons']['committee']['labels_verdict']}." in markdown
    assert "count as 12 labels" in markdown


# ----------------------------------------------------------------------------------- regression values


def test_record_and_read_regression_values(tmp_path, monkeypatch):
    path = tmp_path / "values.json"
    record_value("barrier_eV", 0.1481, unit="eV", tolerance=0.01, tolerance_kind="absolute", command="make x",
                 path=path, test="t.py::test")
    record_value("force_mae", 0.2, unit="eV/Å", tolerance=0.05, tolerance_kind="relative", command="make y",
                 path=path)
    entry = recorded_value("barrier_eV", path)
    assert entry["value"] == 0.1481 and entry["test"] == "t.py::test"
    assert entry["provenance"]["command"] == "make x" and "load_average" in entry["provenance"]
    assert allowed_range(entry) == pytest.approx((0.1381, 0.1581))
    assert allowed_range(recorded_value("force_mae", path)) == pytest.approx((0.19, 0.21))
    with pytest.raises(KeyError, match="records no value 'nothing'"):
        recorded_value("nothing", path)
    with pytest.raises(ValueError, match="tolerance_kind must be"):
        record_value("x", 1.0, unit="eV", tolerance=1, tolerance_kind="loose", command="c", path=path)
    monkeypatch.setenv(RECORD_ENV, "1")  # record mode: the measured value is written, then compared with
    options = {"unit": "eV", "tolerance": 0.01, "tolerance_kind": "absolute", "command": "c", "path": path}
    assert regression_entry("barrier_eV", 0.1500, **options)["value"] == 0.15
    monkeypatch.delenv(RECORD_ENV)  # compare mode: a new measurement does not overwrite the record
    assert regression_entry("barrier_eV", 0.2, **options)["value"] == 0.15
    assert recorded_value("force_mae", path)["value"] == 0.2  # the other entries are kept


def test_the_committed_regression_values_name_their_command_and_tolerance():
    values = json.loads(REGRESSION_VALUES.read_text())["values"]
    for name in ("h_h2_neb_barrier_eV", "h_h2_neb_barrier_relaxed_ends_eV"):
        entry = values[name]
        assert entry["unit"] == "eV" and entry["tolerance"] == 0.01 and entry["tolerance_kind"] == "absolute"
        assert 0.05 < entry["value"] < 0.42  # PBE, below the exact 0.42 eV of H + H2
        assert entry["provenance"]["command"].startswith(f"{RECORD_ENV}=1 ")
        assert entry["provenance"]["git_commit"]


def test_the_metrics_page_holds_the_blocks_made_from_the_code_and_the_json():
    from aiida_reactmlip.report.docs_blocks import read_block
    from aiida_reactmlip.report.evidence import METRICS_BLOCKS, METRICS_PAGE

    text = METRICS_PAGE.read_text()
    for name, render in METRICS_BLOCKS.items():
        assert read_block(text, name) == render(), f"docs/metrics.md block {name} is stale: run write_metrics_blocks()"
    example = read_block(text, "statistics-example")
    assert "the loop needs 9 ± 0.816 labels, random 14 ± 1.33" in example  # the numbers test_statistics checks
