"""Splits without leakage (aiida_reactmlip.splits) and the calcfunctions that store them (calculations.split)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_reactmlip.splits import group_keys, nested_budgets, split_by_group


def scan_groups(sizes) -> list[str]:
    """Group keys of consecutive scans: sizes (5, 3) -> five frames of scan-0 then three of scan-1."""
    return [f"scan-{g}" for g, size in enumerate(sizes) for _ in range(size)]


# ------------------------------------------------------------------------------------ pure


def test_split_keeps_groups_whole_and_covers_every_frame():
    sizes = [5, 3, 7, 4, 6, 2, 5, 8, 3, 7]  # 50 frames in 10 groups
    groups = scan_groups(sizes)
    split = split_by_group(groups, test_fraction=0.2, validation_fraction=0.1, seed=3)
    everything = split["train"] + split["validation"] + split["test"]
    assert sorted(everything) == list(range(50))  # disjoint and complete
    sets_of_group = {}
    for name, indices in split.items():
        assert indices == sorted(indices)
        for i in indices:
            sets_of_group.setdefault(groups[i], set()).add(name)
    assert all(len(names) == 1 for names in sets_of_group.values()), sets_of_group
    assert all(split[name] for name in ("train", "validation", "test"))
    # as close to the targets (10 and 5 frames) as groups of 2..8 frames allow
    assert abs(len(split["test"]) - 10) <= 4 and abs(len(split["validation"]) - 5) <= 4


def test_split_is_seeded():
    groups = scan_groups([4] * 12)
    first = split_by_group(groups, test_fraction=0.25, validation_fraction=0.25, seed=7)
    assert split_by_group(groups, test_fraction=0.25, validation_fraction=0.25, seed=7) == first
    others = [split_by_group(groups, test_fraction=0.25, validation_fraction=0.25, seed=s) for s in range(5)]
    assert any(other["test"] != first["test"] for other in others)
    # equal groups: exact shares
    assert (len(first["train"]), len(first["validation"]), len(first["test"])) == (24, 12, 12)


def test_zero_fraction_gives_empty_set():
    split = split_by_group(list(range(10)), test_fraction=0.3, validation_fraction=0.0, seed=0)
    assert split["validation"] == [] and len(split["test"]) == 3 and len(split["train"]) == 7


def test_a_huge_group_is_not_pulled_into_test():
    groups = ["big"] * 40 + ["a"] * 5 + ["b"] * 5
    split = split_by_group(groups, test_fraction=0.1, validation_fraction=0.1, seed=0)
    assert split["train"] == list(range(40))
    assert {len(split["test"]), len(split["validation"])} == {5}


def test_group_keys_fall_back_to_system_then_frame():
    infos = [{"group": "neb-1", "system": "x"}, {"system": "x"}, {}, {"group": ""}, {"system": "y"}]
    assert group_keys(infos) == ["group:neb-1", "system:x", "frame:2", "frame:3", "system:y"]
    assert group_keys(infos, "frame") == [f"frame:{i}" for i in range(5)]
    assert group_keys(infos, "system")[0] == "system:x"
    with pytest.raises(ValueError, match="group_by must be"):
        group_keys(infos, "scan")


@pytest.mark.parametrize(
    ("groups", "kwargs", "message"),
    [
        (["a", "a", "b"], {"test_fraction": 0.3, "validation_fraction": 0.3},
         "2 group(s); a split into train + test + validation needs at least 3"),
        (["a"] * 9, {"test_fraction": 0.2, "validation_fraction": 0.0}, "9 frame(s) in 1 group(s)"),
        ([], {"test_fraction": 0.2, "validation_fraction": 0.0}, "empty dataset"),
        (["a", "b"], {"test_fraction": 0.6, "validation_fraction": 0.5}, "must be < 1"),
        (["a", "b"], {"test_fraction": -0.1, "validation_fraction": 0.0}, "test_fraction must be >= 0"),
    ],
)
def test_split_refuses_too_small_pools(groups, kwargs, message):
    with pytest.raises(ValueError) as excinfo:
        split_by_group(groups, seed=0, **kwargs)
    assert message in str(excinfo.value)


def test_nested_budgets_are_nested_seeded_and_spread_over_groups():
    groups = scan_groups([6, 6, 6, 6, 6])  # 30 frames in 5 groups
    pool = list(range(3, 30))  # frames 0-2 are elsewhere (e.g. test): never selected
    budgets = nested_budgets(pool, groups, [0, 5, 10, 20], seed=11)
    assert budgets[0] == []
    assert [len(budgets[b]) for b in (5, 10, 20)] == [5, 10, 20]
    assert set(budgets[5]) <= set(budgets[10]) <= set(budgets[20]) <= set(pool)
    assert len({groups[i] for i in budgets[5]}) == 5  # one frame of each scan first
    assert nested_budgets(pool, groups, [0, 5, 10, 20], seed=11) == budgets
    assert nested_budgets(pool, groups, [10], seed=12)[10] != budgets[10]
    assert nested_budgets(pool, None, [27], seed=0)[27] == pool


def test_nested_budgets_refuse_a_budget_larger_than_the_pool():
    with pytest.raises(ValueError, match="label budget 40 exceeds the pool of 25 labelled frame"):
        nested_budgets(list(range(25)), None, [5, 40], seed=0)
    with pytest.raises(ValueError, match="whole number >= 0"):
        nested_budgets(list(range(25)), None, [-1], seed=0)
    with pytest.raises(ValueError, match="frame index 7 has no group"):
        nested_budgets([7], ["a"] * 3, [1], seed=0)


# ------------------------------------------------------------------------------------ calcfunctions


def labelled(n_groups: int, per_group: int):
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    images = []
    for g in range(n_groups):
        for k in range(per_group):
            atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.6 + 0.1 * k + 0.01 * g]], cell=[8, 8, 8], pbc=True)
            atoms.calc = SinglePointCalculator(atoms, energy=-1.0 * (len(images) + 1), forces=np.full((2, 3), 0.1 * k))
            atoms.info.update(group=f"scan-{g}", name=f"f{len(images)}")
            images.append(atoms)
    return LabelledDatasetData.from_atoms(images).store()


def test_split_dataset_calcfunction_stores_the_split_in_provenance():
    from aiida import orm

    from aiida_reactmlip.calculations.split import split_dataset

    dataset = labelled(6, 3)
    outputs, node = split_dataset.run_get_node(
        dataset, orm.Dict({"test_fraction": 1 / 3, "validation_fraction": 1 / 6, "seed": 5})
    )
    split = outputs["split"].get_dict()
    assert (len(split["train"]), len(split["validation"]), len(split["test"])) == (9, 3, 6)
    assert split["n_groups"] == 6 and split["parameters"]["seed"] == 5
    assert not set(split["groups"]["train"]) & set(split["groups"]["test"])
    energies = dataset.get_array("energies")
    for name in ("train", "validation", "test"):
        out = outputs[name]
        assert out.is_stored and out.n_frames == len(split[name])
        np.testing.assert_array_equal(out.get_array("energies"), energies[split[name]])
        assert out.base.links.get_incoming().one().node.pk == node.pk
    assert node.base.links.get_incoming(link_label_filter="dataset").one().node.pk == dataset.pk
    again, _ = split_dataset.run_get_node(
        dataset, orm.Dict({"test_fraction": 1 / 3, "validation_fraction": 1 / 6, "seed": 5})
    )
    assert again["split"].get_dict()["test"] == split["test"]


def test_split_dataset_refuses_unknown_parameters_and_small_pools():
    from aiida import orm

    from aiida_reactmlip.calculations.split import split_dataset

    dataset = labelled(2, 3)
    with pytest.raises(ValueError, match="unknown split parameter.*test_frac"):
        split_dataset(dataset, orm.Dict({"test_frac": 0.2}))
    with pytest.raises(ValueError, match="6 frame.*in 2 group.*needs at least 3 groups"):
        split_dataset(dataset, orm.Dict({"test_fraction": 0.2, "validation_fraction": 0.2}))


def test_select_frames_and_merge_datasets_keep_order():
    from aiida import orm

    from aiida_reactmlip.calculations.split import merge_datasets, select_frames

    dataset = labelled(2, 3)
    energies = dataset.get_array("energies")
    picked = select_frames(dataset, orm.List([4, 0, 2]))
    np.testing.assert_array_equal(picked.get_array("energies"), energies[[4, 0, 2]])
    assert [info["name"] for info in picked.frame_info] == ["f4", "f0", "f2"]
    with pytest.raises(ValueError, match=r"out of range for a dataset of 6"):
        select_frames(dataset, orm.List([6]))
    other = labelled(1, 2)
    merged = merge_datasets(second=other, first=picked)
    np.testing.assert_array_equal(
        merged.get_array("energies"), np.concatenate([other.get_array("energies"), picked.get_array("energies")])
    )
    assert merged.n_frames == 5
