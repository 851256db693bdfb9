"""Reactive errors in the active-learning loop (issue 15, item 4): compute_metrics scores a bond scan's stretch
energy, the loop summary carries the reactive errors of validation and test set per round and as curves, the
progress line prints them, and the evidence verdicts compare them between strategies."""

import numpy as np
import pytest
from aiida import orm
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_reactmlip.calculations.functions import compute_metrics
from aiida_reactmlip.cli.cmd_loop import evidence_verdict_lines, format_row
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.metrics.learning_curves import reactive_values
from aiida_reactmlip.workflows.active_learning_functions import make_summary

#: an H2 bond scan (Å) with made-up "DFT" energies (eV): minimum at 0.75 Å, 4.0 eV to pull to 3.0 Å
SCAN = [(0.6, -5.0), (0.75, -6.0), (1.0, -5.2), (2.0, -2.5), (3.0, -2.0)]


def scan_dataset() -> LabelledDatasetData:
    images = []
    for r, energy in SCAN:
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, r]], cell=[8, 8, 8], pbc=True)
        forces = np.array([[0, 0, -0.1], [0, 0, 0.1]])
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        atoms.info.update(system="h2-dissociation", role="scan", scan_coordinate=r, group="scan-h2",
                          name=f"h2-{r:.2f}")
        images.append(atoms)
    return LabelledDatasetData.from_atoms(images).store()


def predictions(dataset, energies) -> orm.ArrayData:
    node = orm.ArrayData()
    node.set_array("energies", np.asarray(energies, dtype=float))
    node.set_array("forces", dataset.frames.forces + 0.05)
    node.set_array("stress", np.full((dataset.n_frames, 6), np.nan))
    return node


def test_compute_metrics_scores_the_stretch_energy_of_a_bond_scan():
    dataset = scan_dataset()
    # the model: the same minimum, but only 3.5 eV to the end of the scan (0.5 eV too weak a bond)
    model = [-4.9, -6.0, -5.1, -2.8, -2.5]
    metrics = compute_metrics(dataset, predictions(dataset, model), orm.Dict({"energy_reference": "relative:min"}))
    scan = metrics["scans"]["scan-h2"]
    assert scan["dft_stretch_energy_eV"] == pytest.approx(4.0)
    assert scan["model_stretch_energy_eV"] == pytest.approx(3.5)
    assert scan["stretch_energy_error_eV"] == pytest.approx(-0.5)
    assert metrics["scan_energy_mae"] == pytest.approx(0.5)
    # relative to the minimum, the other four frames are off by +0.1, +0.1, -0.3, -0.5 eV
    assert scan["profile_mae_eV"] == pytest.approx((0.1 + 0.1 + 0.3 + 0.5) / 4)
    assert metrics["force_mae"] == pytest.approx(0.05)
    assert reactive_values(metrics.get_dict()) == {"scan_energy_mae": pytest.approx(0.5)}


def test_a_set_without_a_scan_or_a_path_has_no_reactive_errors():
    dataset = scan_dataset()
    flat = LabelledDatasetData.from_atoms([a for a in dataset.to_atoms()[:1]]).store()
    metrics = compute_metrics(flat, predictions(flat, [-5.0]), orm.Dict({"energy_reference": "relative:min"}))
    assert "scan_energy_mae" not in metrics.get_dict() and reactive_values(metrics.get_dict()) == {}


def test_loop_summary_carries_the_reactive_curves_of_validation_and_test():
    info = {"rounds": [{"round": 0, "n_new": 0, "strategy": "random"}, {"round": 1, "n_new": 2, "strategy": "random"}],
            "stop_reason": "budget"}
    nodes = {
        "metrics_00": orm.Dict({"force_mae": 0.2, "energy_mae_per_atom": 0.01, "scan_energy_mae": 0.5,
                                "barrier_mae": 0.3}),
        "metrics_01": orm.Dict({"force_mae": 0.1, "energy_mae_per_atom": 0.005, "scan_energy_mae": 0.2}),
        "test_metrics_00": orm.Dict({"force_mae": 0.25, "energy_mae_per_atom": 0.02, "scan_energy_mae": 0.6}),
        "test_metrics_01": orm.Dict({"force_mae": 0.15, "energy_mae_per_atom": 0.01, "scan_energy_mae": 0.25}),
        "labels_01": LabelledDatasetData.from_atoms(scan_dataset().to_atoms()[:2]).store(),
    }
    summary = make_summary(orm.Dict(info), **nodes).get_dict()
    assert summary["n_labels"] == [0, 2]
    assert summary["scan_energy_mae"] == [0.5, 0.2] and summary["test_scan_energy_mae"] == [0.6, 0.25]
    assert "barrier_mae" not in summary  # round 1 has no barrier: no curve, the row keeps its value
    assert summary["rounds"][0]["barrier_mae"] == 0.3 and "barrier_mae" not in summary["rounds"][1]
    line = format_row({**summary["rounds"][1], "seconds": 3.0})
    assert "scan ΔE 200 meV" in line and "barrier" not in line


def _summaries(strategy_errors: dict[str, list[float]]) -> dict[str, list[dict]]:
    """Ten paired runs per strategy: test force MAE curves and test stretch-energy curves over 0, 2, 4 labels."""
    out = {}
    for strategy, scale in strategy_errors.items():
        out[strategy] = [{"n_labels": [0, 2, 4], "test_force_mae": [0.2, 0.15, 0.1],
                          "test_scan_energy_mae": [0.5, s, s / 2]} for s in scale]
    return out


def test_evidence_verdicts_compare_the_reactive_errors_too():
    spec = {"strategy": "committee", "evidence": {"target": {"metric": "force_mae", "threshold": 0.12}}}
    committee = [0.20 + 0.01 * i for i in range(10)]
    random = [c + 0.10 + 0.005 * i for i, c in enumerate(committee)]  # random's stretch energy is worse every run
    lines = evidence_verdict_lines(_summaries({"committee": committee, "random": random}), spec, censor_at=40)
    text = "\n".join(lines)
    assert "target force_mae <= 0.12 eV/Å" in text
    # the force curves are the same: labels to target 4 for both, no difference
    assert "no significant difference at p < 0.05: committee needs 4 ± 0 labels, random 4 ± 0" in text
    reactive = [line for line in lines if "bond-scan stretch energy MAE" in line]
    assert len(reactive) == 1 and reactive[0].startswith("  vs random: mean bond-scan stretch energy MAE up to 4 "
                                                         "labels: committee")
    assert "no significant" not in reactive[0] and "Wilcoxon p = 0.00195" in reactive[0]
    # one run without the test-set reactive curve: the reactive comparison is left out, not half done
    summaries = _summaries({"committee": committee, "random": random})
    del summaries["random"][3]["test_scan_energy_mae"]
    assert not any("stretch" in line for line in evidence_verdict_lines(summaries, spec, censor_at=40))
    assert evidence_verdict_lines({"committee": summaries["committee"]}, spec, 40) == ["one strategy only: no comparison"]
