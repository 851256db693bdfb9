"""Study files read the same way for every kind: one dataset rule (the same frames are the same node), one
vocabulary (old loop keys read with a warning naming the file and both keys)."""

from __future__ import annotations

import warnings

import pytest
import yaml
from aiida import orm

from aiida_reactmlip.fixture_data import GENERAL_FIXTURE, POOL_FIXTURE, fixture_path
from aiida_reactmlip.specs.datasets import check_dataset_entry, resolve_dataset
from aiida_reactmlip.specs.files import DeprecatedKeyWarning
from aiida_reactmlip.specs.loop import load_loop_spec, loop_builder, loop_datasets
from aiida_reactmlip.specs.study import load_study, study_datasets

LOOP = {"name": "l", "model": "chgnet-0.3.0", "pool": {"fixture": POOL_FIXTURE},
        "validation": {"fixture": GENERAL_FIXTURE}, "strategy": "random", "k": 2, "max_rounds": 1}


def write(tmp_path, name: str, data: dict):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_same_fixture_is_the_same_node_for_a_study_and_a_loop(tmp_path):
    study = load_study(write(tmp_path, "s.yaml", {"name": "s", "dataset": POOL_FIXTURE, "models": ["chgnet-0.3.0"],
                                                  "budgets": [0], "general_set": {"fixture": GENERAL_FIXTURE}}))
    loop = load_loop_spec(write(tmp_path, "l.yaml", LOOP))
    study_nodes, loop_nodes = study_datasets(study), loop_datasets(loop)
    assert study_nodes["dataset"].pk == loop_nodes["label_pool"].pk
    assert study_nodes["general_set"].pk == loop_nodes["validation"].pk
    assert study_nodes["dataset"].label == POOL_FIXTURE
    # every other form naming the same frames gives that node too: a copy of the file, its pk, its UUID
    copy = tmp_path / "copy.extxyz"
    copy.write_bytes(fixture_path(POOL_FIXTURE).read_bytes())
    node = study_nodes["dataset"]
    for entry in ("copy.extxyz", {"extxyz": str(copy)}, node.pk, str(node.pk), {"dataset": node.uuid}, node.uuid):
        assert resolve_dataset(entry, tmp_path / "s.yaml").pk == node.pk, entry


def test_other_frames_are_another_node_and_bad_entries_are_refused(tmp_path):
    pool = resolve_dataset({"fixture": POOL_FIXTURE})
    general = resolve_dataset(GENERAL_FIXTURE)
    assert general.pk != pool.pk and general.n_frames != pool.n_frames
    with pytest.raises(ValueError, match="is a Int, not a LabelledDatasetData"):
        resolve_dataset({"pk": orm.Int(1).store().pk})
    with pytest.raises(ValueError, match=r"dataset file missing.extxyz not found \(looked at"):
        resolve_dataset("missing.extxyz", tmp_path / "s.yaml")
    with pytest.raises(ValueError, match="f.yaml: 'pool' must name exactly one of fixture, extxyz, dataset, pk, uuid"):
        check_dataset_entry({"fixture": "a", "extxyz": "b"}, "pool", "f.yaml")
    with pytest.raises(ValueError, match="'validation' must be a pk, a UUID"):
        check_dataset_entry([1, 2], "validation", "f.yaml")
    check_dataset_entry({"split": {"seed": 1}}, "validation", "f.yaml", allow_split=True)


def test_old_loop_keys_are_read_with_a_warning_naming_the_file_and_both_keys(tmp_path):
    path = write(tmp_path, "old.yaml", {**LOOP, "finetune": {"epochs": 1}, "evaluate": {"device": "cpu"}})
    with pytest.warns(DeprecatedKeyWarning) as caught:
        spec = load_loop_spec(path)
    messages = sorted(str(w.message) for w in caught)
    assert messages == [f"{path}: 'evaluate' is deprecated in loop files, write 'evaluate_settings' instead",
                        f"{path}: 'finetune' is deprecated in loop files, write 'hyperparameters' instead"]
    assert spec["hyperparameters"] == {"epochs": 1} and spec["evaluate_settings"] == {"device": "cpu"}
    assert "finetune" not in spec and "evaluate" not in spec
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new keys: no warning
        new = load_loop_spec(write(tmp_path, "new.yaml", {**LOOP, "hyperparameters": {"epochs": 1}}))
    assert new["hyperparameters"] == {"epochs": 1}
    both = write(tmp_path, "both.yaml", {**LOOP, "finetune": {"epochs": 1}, "hyperparameters": {"epochs": 2}})
    with pytest.raises(ValueError, match="give 'hyperparameters' only; 'finetune' is its old name"):
        load_loop_spec(both)


def test_loop_builder_passes_hyperparameters_and_evaluate_settings(tmp_path, codes):
    spec = load_loop_spec(write(tmp_path, "b.yaml", {**LOOP, "hyperparameters": {"epochs": 1},
                                                     "evaluate_settings": {"device": "cpu"}}))
    builder = loop_builder(spec, seed=3)
    assert builder.finetune_parameters.get_dict() == {"epochs": 1}
    assert builder.evaluate_settings.get_dict() == {"device": "cpu"}
    assert builder.seed.value == 3 and builder.label_pool.pk == resolve_dataset(POOL_FIXTURE).pk


def test_exploration_loop_builder_labels_with_pw_and_keeps_empty_settings(tmp_path, codes, pseudo_family):
    spec = load_loop_spec(write(tmp_path, "x.yaml", {
        "name": "x", "model": "chgnet-0.3.0", "validation": {"fixture": GENERAL_FIXTURE}, "strategy": "fps",
        "explore": {"system": "h2-dissociation", "rattle": {}, "md": {"n_steps": 4}},
        "label": {"protocol": "fast", "pw_processes": 2}, "max_rounds": 1}))
    builder = loop_builder(spec, seed=0)
    assert builder.rattle.get_dict() == {} and builder.md.get_dict() == {"n_steps": 4}  # {}: rattles, defaults
    assert "neb" not in builder
    assert len(builder.structures) == 7  # the H2 bond scan
    assert builder.label.pw_code.uuid == codes["pw"].uuid
    assert builder.label.pseudo_family.value == pseudo_family.label and builder.label.protocol.value == "fast"
    options = builder.label.options.get_dict()
    assert options["resources"]["num_mpiprocs_per_machine"] == 2 and options["withmpi"] is True


def test_k_zero_is_read_only_for_a_barrier_loop(tmp_path):
    with pytest.raises(ValueError, match="'k' must be >= 1"):
        load_loop_spec(write(tmp_path, "k0.yaml", {**LOOP, "k": 0}))
    spec = load_loop_spec(write(tmp_path, "b.yaml", {**LOOP, "k": 0, "target_barrier_error": 0.05}))
    assert spec["k"] == 0 and spec["target_barrier_error"] == 0.05
    with pytest.raises(ValueError, match="'target_barrier_error' must be > 0"):
        load_loop_spec(write(tmp_path, "b0.yaml", {**LOOP, "target_barrier_error": 0}))
