"""The barrier loop (``reactmlip.active_learning`` with ``target_barrier_error``): a real CHGNet NEB of the H + H2
exchange, real pw.x single points at its initial state and saddle, a committee pick, fine-tunes, and the stop when
the model's barrier and the DFT single points agree. Every check is recomputed from the stored band and labels."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_reactmlip.metrics.loop import saddle_image
from aiida_reactmlip.workflows.active_learning import ActiveLearningWorkChain
from test_active_learning import called  # tests/workflows/test_active_learning.py

TARGET = 0.05  # eV
NEB = {"n_images": 5, "interpolation": "idpp", "fmax": 0.05, "max_steps": 300, "num_threads": 1}
SERIAL = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}


def barrier_inputs(codes, registry_models, pseudo_family, **overrides) -> dict:
    from aiida_reactmlip.fixture_data import fixture_path
    from aiida_reactmlip.specs.builders import structures_from_atoms
    from aiida_reactmlip.specs.datasets import stored_fixture_dataset
    from aiida_reactmlip.systems import get_system

    ends = [a for a in get_system("h-h2-exchange").configurations if a.info["role"] in ("initial", "final")]
    inputs = {
        "base_model": registry_models["chgnet-0.3.0"],
        "runner_code": codes["runner"],
        "validation": stored_fixture_dataset(fixture_path("h-h2-exchange-band")),
        "structures": structures_from_atoms(ends),
        "neb": orm.Dict(NEB),
        "strategy": orm.Str("committee"),
        "committee_size": orm.Int(2),
        "k": orm.Int(1),
        "target_barrier_error": orm.Float(TARGET),
        "max_rounds": orm.Int(4),
        "finetune_parameters": orm.Dict({"epochs": 30, "batch_size": 2, "learning_rate": 1e-3, "num_threads": 1}),
        "label": {"pw_code": codes["pw"], "pseudo_family": orm.Str(pseudo_family.label), "protocol": orm.Str("fast"),
                  "options": orm.Dict(SERIAL)},
    }
    inputs.update(overrides)
    return inputs


def recorded_first_check() -> dict:
    """Round 1's saddle check of the recorded H + H2 loops (eV), after checking the test runs their NEB."""
    import json
    import pathlib

    import yaml

    root = pathlib.Path(__file__).resolve().parents[2]
    neb = yaml.safe_load((root / "workchains" / "loop-h3-saddle.yaml").read_text())["explore"]["neb"]
    assert {key: neb[key] for key in ("n_images", "interpolation", "fmax", "max_steps")} == {
        key: NEB[key] for key in ("n_images", "interpolation", "fmax", "max_steps")}
    entry = json.loads((root / "docs" / "results" / "barrier-loops.json").read_text())["reactions"]["h-h2-exchange"]
    return entry["loops"][0]["checks"][0]


@pytest.mark.mlip
def test_barrier_loop_is_refused_without_a_band(codes, registry_models, pseudo_family):
    inputs = barrier_inputs(codes, registry_models, pseudo_family)
    inputs.pop("neb")
    inputs["rattle"] = orm.Dict({"n": 2})
    with pytest.raises(ValueError, match="needs exploration with an MLIP NEB band"):
        run_get_node(ActiveLearningWorkChain, **inputs)
    inputs = barrier_inputs(codes, registry_models, pseudo_family, target_barrier_error=orm.Float(0.0))
    with pytest.raises(ValueError, match="target_barrier_error must be > 0 eV"):
        run_get_node(ActiveLearningWorkChain, **inputs)
    inputs = barrier_inputs(codes, registry_models, pseudo_family, k=orm.Int(0))
    inputs.pop("target_barrier_error")
    with pytest.raises(ValueError, match="k = 0, the saddle alone, is for the barrier loop"):
        run_get_node(ActiveLearningWorkChain, **inputs)
    for change in ({"k": orm.Int(0)}, {"target_barrier_error": None}):
        inputs = barrier_inputs(codes, registry_models, pseudo_family, check_first=orm.Bool(True), **change)
        inputs = {key: value for key, value in inputs.items() if value is not None}
        if "target_barrier_error" not in inputs:
            inputs["rattle"], inputs["k"] = orm.Dict({"n": 2}), orm.Int(1)
            inputs.pop("neb")
        with pytest.raises(ValueError, match="check_first labels a barrier loop's saddle check before its k picks"):
            run_get_node(ActiveLearningWorkChain, **inputs)


@pytest.fixture(scope="module")
def barrier_loop(codes, registry_models, pseudo_family):
    _, node = run_get_node(ActiveLearningWorkChain, **barrier_inputs(codes, registry_models, pseudo_family))
    return node


@pytest.mark.pwx
@pytest.mark.mlip
def test_saddle_checks_are_the_stored_band_and_dft_labels(barrier_loop):
    node = barrier_loop
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    summary = node.outputs.summary.get_dict()
    rows = summary["rounds"][1:]
    assert summary["stop_reason"] == "barrier"
    initial_dft = None
    for row in rows:
        outputs = node.outputs.rounds[f"round_{row['round']:02d}"]
        band = called(node, f"round_{row['round']:02d}__neb").outputs.band
        pool = outputs.pool
        np.testing.assert_allclose(pool.frames.energies, band.frames.energies)  # NEB only: the pool is the band
        saddle = saddle_image(band.frames.energies)
        assert row["saddle_frame"] == saddle
        selected = outputs.selected.get_list()
        # round 1: initial state, saddle, then one pick (random: no committee yet); later: saddle + committee pick
        assert selected[:2] == ([0, saddle] if row["round"] == 1 else [saddle, selected[1]])[:2]
        assert len(selected) == (3 if row["round"] == 1 else 2) and len(set(selected)) == len(selected)
        assert row["strategy"] == ("saddle+random" if row["round"] == 1 else "saddle+committee")
        labels = outputs.labels
        dft = {info["pool_index"]: e for info, e in zip(labels.frame_info, labels.frames.energies)
               if info.get("round") == row["round"]}
        assert sorted(dft) == sorted(selected)
        initial_dft = dft.get(0, initial_dft)
        mlip = band.frames.energies[saddle] - band.frames.energies[0]
        assert row["mlip_barrier"] == pytest.approx(mlip, abs=1e-9)
        assert row["dft_saddle_barrier"] == pytest.approx(dft[saddle] - initial_dft, abs=1e-9)
        assert row["barrier_check_error"] == pytest.approx(abs(mlip - (dft[saddle] - initial_dft)), abs=1e-9)
    # Round 1 checks base CHGNet with the NEB settings of workchains/loop-h3-*.yaml: the same check as every loop
    # of the recorded run (docs/results/barrier-loops.json, `python -m benchmarks.barrier_loop run`).
    recorded = recorded_first_check()
    assert rows[0]["mlip_barrier"] == pytest.approx(recorded["mlip_barrier"], abs=0.01)
    assert rows[0]["dft_saddle_barrier"] == pytest.approx(recorded["dft_saddle_barrier"], abs=0.01)
    assert all(row["barrier_check_error"] > TARGET for row in rows[:-1])
    assert rows[-1]["barrier_check_error"] <= TARGET
    assert summary["n_labels"][1:] == [3 + 2 * i for i in range(len(rows))]


@pytest.mark.pwx
@pytest.mark.mlip
def test_converged_round_stops_without_another_finetune(barrier_loop):
    node = barrier_loop
    last = node.outputs.summary.get_dict()["rounds"][-1]["round"]
    key = f"round_{last:02d}"
    assert not node.base.links.get_outgoing(link_label_filter=f"{key}__finetune").all()
    # The model that passed the check made the last band; it is the loop's model.
    assert called(node, f"{key}__neb").inputs.model.uuid == node.outputs.model.uuid
    assert node.outputs.rounds[key].metrics.uuid == node.outputs.rounds[f"round_{last - 1:02d}"].metrics.uuid
    pw = [n for n in node.called_descendants if n.process_type == "aiida.calculations:quantumespresso.pw"]
    assert len(pw) == node.outputs.dataset.n_frames


@pytest.fixture(scope="module")
def check_first_loop(codes, registry_models, pseudo_family):
    _, node = run_get_node(ActiveLearningWorkChain,
                           **barrier_inputs(codes, registry_models, pseudo_family, check_first=orm.Bool(True)))
    return node


@pytest.mark.pwx
@pytest.mark.mlip
@pytest.mark.slow  # a second barrier loop (~2.5 min): the default run stays under 30 minutes
def test_check_first_labels_the_picks_only_when_the_check_fails(check_first_loop, barrier_loop):
    """check_first: pw.x labels the saddle check alone; the committee and its pick follow only when it fails, so the
    round that passes costs no pick. Round 1 checks base CHGNet on the same band as the loop without check_first,
    and its committee is trained on the check's two labels (without check_first round 1 picks at random)."""
    node = check_first_loop
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    summary = node.outputs.summary.get_dict()
    rows = summary["rounds"][1:]
    assert summary["stop_reason"] == "barrier" and summary["rounds"][-1]["barrier_check_error"] <= TARGET
    n_labels = summary["n_labels"]
    initial_dft = None
    for row, before, after in zip(rows, n_labels, n_labels[1:]):
        key = f"round_{row['round']:02d}"
        outputs = node.outputs.rounds[key]
        band = called(node, f"{key}__neb").outputs.band
        saddle = saddle_image(band.frames.energies)
        check = outputs.check_selected.get_list()
        assert check == ([0, saddle] if row["round"] == 1 else [saddle])
        assert called(node, f"{key}__check_label").outputs.dataset.n_frames == len(check)  # a pw.x batch of its own
        check_labels = outputs.check_labels
        dft = {info["pool_index"]: e for info, e in zip(check_labels.frame_info, check_labels.frames.energies)
               if info.get("round") == row["round"]}
        assert sorted(dft) == sorted(check)
        initial_dft = dft.get(0, initial_dft)
        assert row["barrier_check_error"] == pytest.approx(
            abs(band.frames.energies[saddle] - band.frames.energies[0] - (dft[saddle] - initial_dft)), abs=1e-9)
        passed = row["barrier_check_error"] <= TARGET
        links = {link.link_label for link in node.base.links.get_outgoing().all()}
        if passed:  # no committee, no pick, no fine-tune: the check's labels are the round's
            assert row["strategy"] == "saddle" and outputs.selected.get_list() == check
            assert not {f"{key}__committee_01", f"{key}__select", f"{key}__finetune"} & links
            assert after - before == row["n_new"] == len(check)
        else:  # the committee (trained on the labels so far, the check's included: round 1 too) and its pick
            picks = outputs.selected.get_list()  # follow in a second pw.x batch, never a check frame
            assert len(picks) == 1 and not set(picks) & set(check)
            assert row["strategy"] == "saddle+committee"
            assert {f"{key}__committee_01", f"{key}__label", f"{key}__finetune"} <= links
            assert after - before == row["n_new"] == len(check) + 1
    assert rows[-1]["barrier_check_error"] <= TARGET and all(r["barrier_check_error"] > TARGET for r in rows[:-1])
    # the same base model on the same band as the loop that labels check and pick together: the same first check
    first = barrier_loop.outputs.summary.get_dict()["rounds"][1]
    for name in ("mlip_barrier", "dft_saddle_barrier", "barrier_check_error"):
        assert rows[0][name] == pytest.approx(first[name], abs=1e-6)
    pw = [n for n in node.called_descendants if n.process_type == "aiida.calculations:quantumespresso.pw"]
    assert len(pw) == node.outputs.dataset.n_frames == n_labels[-1]


class _FakeLoop:
    """A finished loop as print_final_table reads it: ``pk`` and ``outputs.summary.get_dict()``."""

    def __init__(self, pk: int, seed: int, n_labels: list, stop_reason: str):
        summary = {"seed": seed, "n_labels": n_labels, "force_mae": [0.2 - 0.01 * i for i in range(len(n_labels))],
                   "stop_reason": stop_reason}
        self.pk = pk
        self.outputs = type("Outputs", (), {"summary": type("Summary", (), {"get_dict": lambda _: summary})()})()


def test_final_table_counts_labels_at_the_passed_check_and_pairs_with_random():
    from aiida_reactmlip.cli.cmd_loop import format_row, print_final_table

    spec = {"strategy": "committee", "target_barrier_error": 0.05, "max_dft_labels": 9}
    committee = [_FakeLoop(10 + s, s, [0, 3, 5], "barrier") for s in range(6)]
    random = [_FakeLoop(20 + s, s, [0, 3, 5, 7, 9], "budget") for s in range(6)]
    lines = []
    print_final_table({"committee": committee, "random": random}, spec, lines.append)
    rows = [line.split() for line in lines if line.startswith(("committee", "random"))]
    assert [row[-1] for row in rows] == ["5"] * 6 + ["reached"] * 6  # "not reached": budget spent
    verdict = lines[-1]
    # committee 5 labels in every pair, random censored at 9 + 1: 6 non-zero differences of one sign
    assert verdict.startswith("barrier within 0.05 eV:") and "p = 0.031" in verdict, verdict
    row = {"round": 2, "n_labels": 5, "n_new": 2, "strategy": "saddle+committee", "force_mae": 0.1, "seconds": 4.0,
           "mlip_barrier": 0.169, "dft_saddle_barrier": 0.140, "barrier_check_error": 0.029}
    assert "saddle check: model 0.169 vs DFT 0.140 eV (|err| 29 meV)" in format_row(row)
