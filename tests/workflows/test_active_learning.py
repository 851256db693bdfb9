"""reactmlip.active_learning: inputs refused before any job, a 2-round oracle loop with real CHGNet 0.3.0
fine-tunes (committee selection), restart through caching, and (slow) the loop against random selection.

The fast tests use an oracle pool labelled with ASE's EMT (an oracle is an oracle: the loop's mechanics do
not depend on where the labels come from); the slow evidence test uses the DFT pool of fixtures/datasets.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.workflows.active_learning import ActiveLearningWorkChain

#: 2 epochs, tiny batches: a fine-tune of a 4-atom cell takes seconds on 2 cores.
FAST_FINETUNE = {"epochs": 2, "batch_size": 2, "learning_rate": 1e-4, "num_threads": 2}


def emt_cu_frames(n_groups: int, per_group: int, seed: int, stdev: float = 0.08, group_prefix: str = "a") -> list:
    """4-atom fcc Cu cells at ``n_groups`` lattice constants, ``per_group`` rattles each, labelled with EMT."""
    rng = np.random.default_rng(seed)
    images = []
    for g in range(n_groups):
        a = 3.50 + 0.06 * g
        for k in range(per_group):
            atoms = bulk("Cu", "fcc", a=a, cubic=True)
            atoms.positions += rng.normal(0.0, stdev * (1 + k), atoms.positions.shape)
            atoms.calc = EMT()
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
            atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
            atoms.info.update(group=f"{group_prefix}{a:.2f}", name=f"cu-{group_prefix}{a:.2f}-r{k}", system="cu-bulk")
            images.append(atoms)
    return images


@pytest.fixture(scope="module")
def emt_pool():
    return LabelledDatasetData.from_atoms(emt_cu_frames(4, 3, seed=1)).store()


@pytest.fixture(scope="module")
def emt_validation():
    return LabelledDatasetData.from_atoms(emt_cu_frames(2, 2, seed=2, group_prefix="v")).store()


def loop_inputs(codes, registry_models, pool, validation, **overrides) -> dict:
    inputs = {
        "base_model": registry_models["chgnet-0.3.0"],
        "runner_code": codes["runner"],
        "validation": validation,
        "label_pool": pool,
        "strategy": orm.Str("committee"),
        "k": orm.Int(2),
        "committee_size": orm.Int(2),
        "max_rounds": orm.Int(2),
        "seed": orm.Int(3),
        "finetune_parameters": orm.Dict(FAST_FINETUNE),
    }
    inputs.update(overrides)
    return inputs


def count_calcjobs() -> int:
    return orm.QueryBuilder().append(orm.CalcJobNode).count()


def called(node, label: str):
    """The process called by ``node`` with the call link label ``label``; for a fine-tune, the last job of the
    ``reactmlip.finetune_base`` WorkChain called so."""
    links = node.base.links.get_outgoing(link_label_filter=label).all()
    assert len(links) == 1, f"{label}: {len(links)} links"
    process = links[0].node
    if process.process_type == "aiida.workflows:reactmlip.finetune_base":
        return max(process.called, key=lambda job: job.ctime)
    return process


def loop_of(job):
    """The loop that ran ``job``: its caller, or the caller of the fine-tune WorkChain that ran it."""
    caller = job.caller
    return caller.caller if caller.process_type == "aiida.workflows:reactmlip.finetune_base" else caller


# ----------------------------------------------------------------------------------- refused inputs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strategy": "uncertainty"}, "unknown selection strategy 'uncertainty'; available: committee"),
        ({"k": 0}, "k (configurations labelled per round) must be >= 1"),
        ({"committee_size": 1}, "needs committee_size >= 2"),
        ({"initial_strategy": "committee"}, "initial_strategy 'committee' must be a strategy that needs no"),
        ({"target_force_mae": -0.1}, "target_force_mae must be > 0"),
        ({"finetune_parameters": {"epoch": 2}}, "unknown chgnet hyperparameter(s) epoch"),
        ({"label_pool": None}, "nothing to select from"),
        ({"validation": "pool"}, "share 12 DFT label(s)"),
        ({"label_pool": "oxygen"}, "does not cover element(s) Og"),
        ({"validation": "singles"}, "cannot be scored with energy_reference 'relative:min'"),
    ],
)
def test_bad_inputs_are_refused_before_any_job(codes, registry_models, emt_pool, emt_validation, change, message):
    inputs = loop_inputs(codes, registry_models, emt_pool, emt_validation)
    for key, value in change.items():
        if value is None:
            inputs.pop(key)
        elif value == "pool":
            # the same DFT labels in pool and validation (source_uuid set as pw.x labels carry it)
            atoms = emt_cu_frames(4, 3, seed=1)
            for i, a in enumerate(atoms):
                a.info["source_uuid"] = f"00000000-0000-4000-8000-{i:012d}"
            shared = LabelledDatasetData.from_atoms(atoms).store()
            inputs["label_pool"], inputs["validation"] = shared, shared
        elif value == "singles":  # one frame per group: no relative energy to compare
            inputs["validation"] = LabelledDatasetData.from_atoms(emt_cu_frames(3, 1, seed=6)).store()
        elif value == "oxygen":
            atoms = emt_cu_frames(1, 1, seed=5)[0]
            atoms.numbers[0] = 118  # Og: covered by no model
            inputs["label_pool"] = LabelledDatasetData.from_atoms([atoms]).store()
        else:
            inputs[key] = {str: orm.Str, int: orm.Int, float: orm.Float, dict: orm.Dict}[type(value)](value)
    before = count_calcjobs()
    with pytest.raises(ValueError) as excinfo:
        run_get_node(ActiveLearningWorkChain, **inputs)
    assert message in str(excinfo.value)
    assert count_calcjobs() == before


def test_exploration_mode_needs_an_explorer_and_dft_inputs(codes, registry_models, emt_pool, emt_validation):
    inputs = loop_inputs(codes, registry_models, emt_pool, emt_validation)
    inputs.pop("label_pool")
    inputs["start_dataset"] = emt_pool
    with pytest.raises(ValueError, match="needs at least one of `md`, `rattle` or `neb`"):
        run_get_node(ActiveLearningWorkChain, **inputs)
    inputs["md"] = orm.Dict({"n_steps": 10})
    with pytest.raises(ValueError, match="give `label.pw_code` and `label.pseudo_family`"):
        run_get_node(ActiveLearningWorkChain, **inputs)
    inputs["label_pool"] = emt_pool
    with pytest.raises(ValueError, match="not both"):
        run_get_node(ActiveLearningWorkChain, **inputs)


# ------------------------------------------------------------------------ a 2-round oracle loop


@pytest.fixture(scope="module")
def committee_loop(codes, registry_models, emt_pool, emt_validation):
    """Round 0: zero-shot CHGNet; round 1: 2 random picks (no labels, no committee yet); round 2: a committee
    of 2 (the round-1 model and a fine-tune with another seed) picks the 2 frames it disagrees on most."""
    _, node = run_get_node(ActiveLearningWorkChain, **loop_inputs(codes, registry_models, emt_pool, emt_validation))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return node


@pytest.mark.mlip
def test_loop_rounds_labels_and_stop_reason(committee_loop, emt_pool):
    summary = committee_loop.outputs.summary.get_dict()
    assert summary["stop_reason"] == "max_rounds"
    assert summary["n_labels"] == [0, 2, 4]
    assert [r["strategy"] for r in summary["rounds"]] == ["base model", "random", "committee"]
    assert [r["n_new"] for r in summary["rounds"]] == [0, 2, 2]
    first, second = summary["rounds"][1]["selected"], summary["rounds"][2]["selected"]
    assert len(set(first + second)) == 4  # a pool frame is never labelled twice
    # the labels are exactly the pool frames selected, in selection order
    labels = committee_loop.outputs.dataset
    np.testing.assert_array_equal(labels.frames.positions, emt_pool.frames.subset(first + second).positions)
    np.testing.assert_array_equal(labels.get_array("energies"), emt_pool.get_array("energies")[first + second])
    # progress rows (the extra `reactmlip loop show` reads) agree with the summary
    progress = committee_loop.base.extras.get("loop_progress")
    assert [row["force_mae"] for row in progress] == summary["force_mae"]
    assert all(row["seconds"] > 0 for row in progress)


@pytest.mark.mlip
def test_round_errors_are_recomputable_from_the_stored_predictions(committee_loop, emt_validation):
    summary = committee_loop.outputs.summary.get_dict()
    dft_forces = emt_validation.get_array("forces")
    for row in summary["rounds"]:
        key = f"round_{row['round']:02d}"
        metrics = committee_loop.outputs.rounds[key].metrics
        assert metrics.uuid == row["metrics_uuid"]
        predictions = metrics.creator.inputs.predictions
        assert predictions.creator.inputs.datasets.validation.uuid == emt_validation.uuid
        assert predictions.base.attributes.get("dataset_uuid") == emt_validation.uuid
        mae = np.abs(predictions.get_array("forces") - dft_forces).mean()
        assert row["force_mae"] == pytest.approx(mae, rel=1e-9)
    # round 0 is the zero-shot base model; a fine-tune moves the error
    zero_shot = committee_loop.outputs.rounds.round_00.metrics.creator.inputs.model
    assert zero_shot.uuid == committee_loop.inputs.base_model.uuid
    assert summary["force_mae"][2] != pytest.approx(summary["force_mae"][0], rel=1e-6)


@pytest.mark.mlip
def test_committee_picks_the_frames_it_disagrees_on_most(committee_loop):
    scores = committee_loop.outputs.rounds.round_02.scores.get_dict()
    first = committee_loop.outputs.rounds.round_01.selected.get_list()
    std = np.array(scores["committee_force_std"])
    assert std.shape == (12,) and np.all(std >= 0) and std.max() > 0
    available = [i for i in range(12) if i not in first]
    top = sorted(available, key=lambda i: -std[i])[:2]
    assert sorted(scores["selected"]) == sorted(top)
    # the std is recomputable from the two members' predictions on the pool
    select = committee_loop.outputs.rounds.round_02.selected.creator
    members = [select.inputs[f"member_{m:02d}"] for m in range(2)]
    f0, f1 = (m.get_array("forces") for m in members)
    per_atom = np.linalg.norm(np.stack([f0, f1]).std(axis=0), axis=1)
    n_atoms = members[0].get_array("n_atoms")
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    expected = [per_atom[offsets[i]:offsets[i + 1]].max() for i in range(12)]
    np.testing.assert_allclose(std, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.mlip
def test_every_round_is_in_the_provenance_graph(committee_loop):
    node = committee_loop
    base = node.inputs.base_model
    labels_r1 = node.outputs.rounds.round_01.labels
    labels_r2 = node.outputs.rounds.round_02.labels
    finetune_r2 = called(node, "round_02__finetune")
    assert finetune_r2.process_type == "aiida.calculations:reactmlip.finetune"
    assert finetune_r2.inputs.training.uuid == labels_r2.uuid
    assert finetune_r2.inputs.base_model.uuid == base.uuid
    assert finetune_r2.outputs.model.uuid == node.outputs.model.uuid
    merge = called(node, "round_02__merge")
    assert merge.inputs.a_previous.uuid == labels_r1.uuid
    assert called(node, "round_01__label").inputs.dataset.uuid == node.inputs.label_pool.uuid
    committee = called(node, "round_02__committee_01")
    assert committee.inputs.training.uuid == labels_r1.uuid
    assert committee.inputs.parameters["seed"] != called(node, "round_01__finetune").inputs.parameters["seed"]
    predict = called(node, "round_02__predict")  # the whole committee on the pool in one job
    assert predict.process_type == "aiida.calculations:reactmlip.evaluate_many"
    assert predict.inputs.models.member_00.uuid == node.outputs.rounds.round_01.model.uuid
    assert predict.inputs.models.member_01.uuid == committee.outputs.model.uuid
    assert predict.inputs.datasets.pool.uuid == node.inputs.label_pool.uuid
    evaluate = called(node, "round_02__evaluate")
    assert evaluate.inputs.models.model.uuid == node.outputs.model.uuid
    assert called(node, "round_02__metrics").inputs.predictions.uuid == evaluate.outputs.predictions.model.validation.uuid
    assert called(node, "round_02__select").outputs.selected.uuid == node.outputs.rounds.round_02.selected.uuid
    assert node.outputs.model.base_model_uuid == base.uuid


# ------------------------------------------------------------------------------------ restart


@pytest.mark.mlip
def test_rerun_with_caching_runs_no_finished_finetune_or_evaluation_again(committee_loop, codes, registry_models,
                                                                         emt_pool, emt_validation):
    """A crashed loop is run again with the same inputs and caching on: every fine-tune, committee member and
    evaluation of the rounds already done is a cached copy (no runner job), and the selections are the same."""
    from aiida.manage.caching import enable_caching

    with enable_caching(identifier="aiida.calculations:reactmlip.*"):
        _, again = run_get_node(ActiveLearningWorkChain, **loop_inputs(codes, registry_models, emt_pool, emt_validation))
    assert again.is_finished_ok, again.exit_message
    jobs = [n for n in again.called_descendants if isinstance(n, orm.CalcJobNode)]
    kinds = sorted({n.process_type.split(":")[1] for n in jobs})
    assert kinds == ["reactmlip.evaluate_many", "reactmlip.finetune"]
    assert len(jobs) == 7  # round 0: 1 evaluation; round 1: 1 fine-tune + 1; round 2: 1 + 1 committee + 1 + 1
    assert all(n.base.caching.is_created_from_cache for n in jobs), [n.pk for n in jobs if not n.base.caching.is_created_from_cache]
    sources = {loop_of(orm.load_node(n.base.caching.get_cache_source())).uuid for n in jobs}
    assert sources == {committee_loop.uuid}
    first, second = committee_loop.outputs.summary.get_dict(), again.outputs.summary.get_dict()
    assert [r["selected"] for r in second["rounds"][1:]] == [r["selected"] for r in first["rounds"][1:]]
    assert second["force_mae"] == first["force_mae"]


@pytest.mark.slow
@pytest.mark.mlip
def test_a_stopped_loop_continues_without_repeating_finished_work(codes, registry_models, emt_pool, emt_validation):
    """A random-selection loop stopped after round 1, run again with max_rounds 2 and caching on: rounds 0
    and 1 come from the cache (no fine-tune or evaluation runs again), only round 2 runs."""
    from aiida.manage.caching import enable_caching

    common = {"strategy": orm.Str("random"), "seed": orm.Int(11)}
    _, first = run_get_node(ActiveLearningWorkChain, **loop_inputs(
        codes, registry_models, emt_pool, emt_validation, max_rounds=orm.Int(1), **common))
    assert first.is_finished_ok, first.exit_message
    with enable_caching(identifier="aiida.calculations:reactmlip.*"):
        _, second = run_get_node(ActiveLearningWorkChain, **loop_inputs(
            codes, registry_models, emt_pool, emt_validation, max_rounds=orm.Int(2), **common))
    assert second.is_finished_ok, second.exit_message

    def cached(label):
        return called(second, label).base.caching.is_created_from_cache

    assert cached("round_00__evaluate") and cached("round_01__finetune") and cached("round_01__evaluate")
    assert called(second, "round_01__finetune").base.caching.get_cache_source() == \
        called(first, "round_01__finetune").uuid
    assert not cached("round_02__finetune") and not cached("round_02__evaluate")
    s1, s2 = first.outputs.summary.get_dict(), second.outputs.summary.get_dict()
    assert s2["n_labels"] == [0, 2, 4]
    assert s2["rounds"][1]["selected"] == s1["rounds"][1]["selected"]
    assert s2["force_mae"][:2] == s1["force_mae"]


# ------------------------------------------------------------------ exploration mode: MLIP MD + pw.x labels


@pytest.mark.slow
@pytest.mark.pwx
@pytest.mark.mlip
def test_exploration_round_md_fps_pwx_and_a_rerun_runs_no_pwx_again(codes, registry_models, pseudo_family,
                                                                     h2_scan_label):
    """One exploration round on H2: Langevin MD with CHGNet from two scan frames + rattles make the pool, FPS
    picks 2, pw.x labels them, CHGNet is fine-tuned and scored on the 7 DFT scan frames. Run again with
    caching on: no new PwCalculation, the same selection and labels."""
    from aiida.manage.caching import enable_caching

    from aiida_reactmlip.systems import get_system
    from aiida_reactmlip.specs.builders import structures_from_atoms

    validation = h2_scan_label.outputs.dataset
    starts = [a for a in get_system("h2-dissociation").configurations if a.info["name"] in ("h2-scan-0.75", "h2-scan-1.10")]

    def inputs():
        return {
            "base_model": registry_models["chgnet-0.3.0"],
            "runner_code": codes["runner"],
            "validation": validation,
            "structures": structures_from_atoms(starts),
            "md": orm.Dict({"temperature_K": 1000.0, "timestep_fs": 0.5, "n_steps": 20, "save_every": 5}),
            "rattle": orm.Dict({"n": 1, "stdev": 0.05}),
            "strategy": orm.Str("fps"),
            "k": orm.Int(2),
            "max_rounds": orm.Int(1),
            "finetune_parameters": orm.Dict({**FAST_FINETUNE, "epochs": 1}),
            "label": {"pw_code": codes["pw"], "pseudo_family": orm.Str(pseudo_family.label),
                      "protocol": orm.Str("fast"),
                      "options": orm.Dict({"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
                                           "withmpi": False})},
        }

    _, node = run_get_node(ActiveLearningWorkChain, **inputs())
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    md = called(node, "round_01__md")
    assert md.inputs.model.uuid == registry_models["chgnet-0.3.0"].uuid  # round 1 explores with the base model
    pool = node.outputs.rounds.round_01.pool
    assert pool.n_frames == 2 * 4 + 2  # 2 trajectories x (20 / 5) saved frames + 2 rattles
    selected = node.outputs.rounds.round_01.selected.get_list()
    labels = node.outputs.dataset
    assert labels.n_frames == 2
    pw = [n for n in node.called_descendants if n.process_type == "aiida.calculations:quantumespresso.pw"]
    assert len(pw) == 2
    assert {orm.load_node(u).uuid for u in labels.source_uuids} == {n.uuid for n in pw}
    # the labelled structures are the selected pool frames (LabelWorkChain sorts by key frame_<index>)
    np.testing.assert_allclose(labels.frames.positions, pool.frames.subset(sorted(selected)).positions, atol=1e-9)
    summary = node.outputs.summary.get_dict()
    assert summary["mode"] == "exploration" and summary["n_labels"] == [0, 2]

    with enable_caching(identifier="aiida.calculations:*"):
        _, again = run_get_node(ActiveLearningWorkChain, **inputs())
    assert again.is_finished_ok, again.exit_message
    pw_again = [n for n in again.called_descendants if n.process_type == "aiida.calculations:quantumespresso.pw"]
    assert len(pw_again) == 2 and all(n.base.caching.is_created_from_cache for n in pw_again)
    assert again.outputs.rounds.round_01.selected.get_list() == selected
    np.testing.assert_array_equal(again.outputs.dataset.get_array("forces"), labels.get_array("forces"))


# ------------------------------------------------------------------ the evidence: loop against random


@pytest.mark.slow
@pytest.mark.mlip
def test_evidence_committee_loop_against_random_on_the_dft_pool(tmp_path):
    """workchains/loop-ch4-evidence.yaml end to end (about 8 minutes on 2 idle cores): committee selection and random
    selection on the DFT CH4 pool, same budget and seeds. Checks the bookkeeping of the comparison, not who
    wins: that is the measurement (docs/active-learning.md)."""
    import pathlib
    import re

    from click.testing import CliRunner

    from aiida_reactmlip.cli import cmd_root
    from aiida_reactmlip.metrics.loop import compare_to_random
    from aiida_reactmlip.specs.loop import load_loop_spec

    path = pathlib.Path(__file__).resolve().parents[2] / "workchains" / "loop-ch4-evidence.yaml"
    spec = load_loop_spec(path)
    result = CliRunner().invoke(cmd_root, ["loop", "run", str(path), "--output", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    pks = [int(pk) for pk in re.findall(r"ActiveLearningWorkChain pk (\d+)", result.output)]
    assert len(pks) == 2 * len(spec["seeds"])
    nodes = [orm.load_node(pk) for pk in pks]
    loops = [n for n in nodes if n.inputs.strategy.value == "committee"]
    randoms = [n for n in nodes if n.inputs.strategy.value == "random"]
    budget = list(range(0, spec["max_dft_labels"] + 1, spec["k"]))
    for node in nodes:
        summary = node.outputs.summary.get_dict()
        assert summary["n_labels"] == budget and summary["stop_reason"] == "budget"
        picked = [i for row in summary["rounds"][1:] for i in row["selected"]]
        assert len(picked) == len(set(picked)) == spec["max_dft_labels"]
    for loop, rand in zip(loops, randoms):
        assert loop.inputs.seed.value == rand.inputs.seed.value
        assert rand.base.extras.get("loop_baseline_for") == loop.uuid
        # round 1 has no labels: both pick at random with the same seed, the same frames
        assert loop.outputs.rounds.round_01.selected.get_list() == rand.outputs.rounds.round_01.selected.get_list()
        assert [r["strategy"] for r in loop.outputs.summary["rounds"][2:]] == ["committee"] * (len(budget) - 2)
    curves = [(n.outputs.summary["n_labels"], n.outputs.summary["force_mae"]) for n in loops]
    random_curves = [(n.outputs.summary["n_labels"], n.outputs.summary["force_mae"]) for n in randoms]
    comparison = compare_to_random(curves, random_curves, spec["target_force_mae"])
    assert f"{comparison['verdict']}" in result.output
    assert (tmp_path / "error_vs_labels.png").stat().st_size > 0
    print(result.output)
