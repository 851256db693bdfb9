"""Calcfunctions that split, select and merge labelled datasets, so that every split is in the provenance.

- ``reactmlip.split_dataset``: train / validation / test by configuration group (:mod:`aiida_reactmlip.splits`)
- ``reactmlip.select_frames``: the frames at given indices, in the given order
- ``reactmlip.merge_datasets``: several datasets concatenated, in keyword order
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.frames import Frames
from aiida_reactmlip.splits import SETS, group_keys, split_by_group

#: Parameters of ``split_dataset``, with defaults.
SPLIT_DEFAULTS = {"test_fraction": 0.2, "validation_fraction": 0.1, "seed": 0, "group_by": "auto"}


def split_parameters(parameters: dict) -> dict:
    """``parameters`` with defaults filled; ``ValueError`` naming an unknown key."""
    unknown = sorted(set(parameters) - set(SPLIT_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown split parameter(s) {', '.join(unknown)}; known: {', '.join(SPLIT_DEFAULTS)}")
    return {**SPLIT_DEFAULTS, **parameters}


def compute_split(dataset: LabelledDatasetData, parameters: dict) -> dict:
    """The split of ``dataset`` (pure, no node created): the indices of each set and the groups in each."""
    params = split_parameters(parameters)
    keys = group_keys(dataset.frame_info, params["group_by"])
    sets = split_by_group(
        keys, test_fraction=params["test_fraction"], validation_fraction=params["validation_fraction"],
        seed=int(params["seed"]),
    )
    result = {name: sets[name] for name in SETS}
    result["groups"] = {name: sorted({keys[i] for i in sets[name]}) for name in SETS}
    result["parameters"] = params
    result["n_frames"] = len(keys)
    result["n_groups"] = len(set(keys))
    return result


@calcfunction
def split_dataset(dataset: LabelledDatasetData, parameters: orm.Dict) -> dict:
    """Split ``dataset`` into ``train``, ``validation`` and ``test`` datasets; a configuration group is never split.

    ``parameters``: ``test_fraction``, ``validation_fraction`` (shares of frames, 0 for an empty set),
    ``seed``, ``group_by`` (``auto``: info ``group``, else ``system``, else each frame alone).
    Outputs: ``train``, ``validation``, ``test`` (LabelledDatasetData, a set may have 0 frames when its
    fraction is 0) and ``split`` (Dict: the frame indices of each set, the group keys in each, the
    parameters used, ``n_frames`` and ``n_groups``).
    """
    result = compute_split(dataset, parameters.get_dict())
    frames = dataset.frames
    outputs = {name: LabelledDatasetData(frames=frames.subset(result[name])) for name in SETS}
    outputs["split"] = orm.Dict(result)
    return outputs


@calcfunction
def select_frames(dataset: LabelledDatasetData, indices: orm.List) -> LabelledDatasetData:
    """The frames of ``dataset`` at ``indices`` (frame indices, in the order given; no repeats)."""
    values = indices.get_list()
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in values):
        raise ValueError(f"indices must be whole frame indices, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError("indices contain duplicates: a frame can be selected only once")
    bad = [i for i in values if not 0 <= i < dataset.n_frames]
    if bad:
        raise ValueError(f"frame index(es) {bad} out of range for a dataset of {dataset.n_frames} frame(s)")
    return LabelledDatasetData(frames=dataset.frames.subset(values))


@calcfunction
def merge_datasets(**datasets: LabelledDatasetData) -> LabelledDatasetData:
    """One dataset with the frames of every keyword argument, concatenated in keyword order."""
    if not datasets:
        raise ValueError("merge_datasets needs at least one dataset")
    for key, node in datasets.items():
        if not isinstance(node, LabelledDatasetData):
            raise TypeError(f"{key} is a {type(node).__name__}, not a LabelledDatasetData")
    return LabelledDatasetData(frames=Frames.concatenate(node.frames for node in datasets.values()))
