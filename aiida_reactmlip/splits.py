"""Train/validation/test splits without leakage, and nested label budgets (pure: no AiiDA, no torch).

A *group* is a set of frames that are not independent of each other: the images of one NEB path, the
frames of one bond scan or one MD trajectory, the rattles of one structure. A model trained on one image
of a path and tested on its neighbour is tested on what it has (almost) seen, so every function here
keeps a group whole: all its frames land in the same set.

The group of a frame is its info entry ``group``; frames without one fall back to their ``system``
entry; frames with neither are their own group (see :func:`group_keys`).

Everything is seeded (``numpy.random.default_rng(seed)``): the same inputs and seed give the same split
on every machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["SETS", "group_keys", "nested_budgets", "split_by_group"]

#: The three sets of a split, in this order.
SETS = ("train", "validation", "test")


def group_keys(infos: Sequence[Mapping[str, Any]], group_by: str = "auto") -> list[str]:
    """The group key of every frame from its info dict.

    ``group_by``: ``"auto"`` (``group``, else ``system``, else the frame alone), ``"group"``,
    ``"system"`` (the frame alone where the key is missing) or ``"frame"`` (every frame its own group:
    a plain random split, which leaks between correlated frames: use it only for independent frames).
    """
    if group_by not in ("auto", "group", "system", "frame"):
        raise ValueError(f"group_by must be 'auto', 'group', 'system' or 'frame', got {group_by!r}")
    keys = []
    for i, info in enumerate(infos):
        candidates = {"auto": ("group", "system"), "group": ("group",), "system": ("system",), "frame": ()}[group_by]
        key = None
        for name in candidates:
            value = info.get(name)
            if value is not None and str(value) != "":
                key = f"{name}:{value}"
                break
        keys.append(key if key is not None else f"frame:{i}")
    return keys


def _check_fraction(name: str, value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}") from exc
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be >= 0 and < 1, got {value}")
    return value


def _ordered_groups(groups: Sequence[Any]) -> dict[Any, list[int]]:
    """Frame indices of every group, groups in order of first appearance."""
    members: dict[Any, list[int]] = {}
    for index, key in enumerate(groups):
        members.setdefault(key, []).append(index)
    return members


def split_by_group(
    groups: Sequence[Any], *, test_fraction: float, validation_fraction: float, seed: int = 0
) -> dict[str, list[int]]:
    """Split frames into ``train``, ``validation`` and ``test`` frame indices, never splitting a group.

    ``groups``: the group key of every frame (any hashable; see :func:`group_keys`).
    ``test_fraction``, ``validation_fraction``: the wanted share of *frames* in each set (0 for none).
    Groups are shuffled with ``seed`` and dealt to the test set, then the validation set, each taking
    a group while that brings its frame count closer to its target (at least one group when the
    fraction is above 0); the rest is training. Set sizes are therefore only as close to the fractions
    as the group sizes allow.

    Returns ``{"train": [...], "validation": [...], "test": [...]}``, each sorted ascending.
    Raises ``ValueError`` when there are too few groups for the sets asked for (training always needs
    at least one group), naming how many there are and what to change.
    """
    test_fraction = _check_fraction("test_fraction", test_fraction)
    validation_fraction = _check_fraction("validation_fraction", validation_fraction)
    if test_fraction + validation_fraction >= 1.0:
        raise ValueError(
            f"test_fraction + validation_fraction must be < 1 to leave frames for training, got "
            f"{test_fraction} + {validation_fraction}"
        )
    n_frames = len(groups)
    members = _ordered_groups(groups)
    wanted = [name for name, fraction in (("test", test_fraction), ("validation", validation_fraction)) if fraction]
    needed = 1 + len(wanted)
    if n_frames == 0:
        raise ValueError("cannot split an empty dataset: it has no frame")
    if len(members) < needed:
        raise ValueError(
            f"the pool has {n_frames} frame(s) in {len(members)} group(s); a split into train"
            f"{''.join(' + ' + name for name in wanted)} needs at least {needed} groups (a group is never "
            f"split across sets). Label more configurations, lower the fractions to 0, or give the frames "
            f"finer 'group' info"
        )
    rng = np.random.default_rng(seed)
    keys = list(members)
    order = [keys[i] for i in rng.permutation(len(keys))]
    targets = {"test": test_fraction * n_frames, "validation": validation_fraction * n_frames}
    assigned: dict[str, list[Any]] = {"train": [], "validation": [], "test": []}
    remaining = list(order)
    for name in ("test", "validation"):
        target = targets[name]
        if not target:
            continue
        # groups that must stay for the sets dealt later: training, and validation after test
        reserve = 1 + (1 if name == "test" and targets["validation"] else 0)
        count, chosen = 0, []
        for key in remaining:
            size = len(members[key])
            room = len(remaining) - len(chosen) - 1 >= reserve
            if room and abs(count + size - target) < abs(count - target):
                chosen.append(key)
                count += size
        if not chosen:  # every group overshoots the target: the smallest one (first in shuffled order)
            chosen = [min(remaining, key=lambda k: len(members[k]))]
        assigned[name] = chosen
        remaining = [key for key in remaining if key not in chosen]
    assigned["train"] = remaining
    return {name: sorted(i for key in assigned[name] for i in members[key]) for name in SETS}


def nested_budgets(
    indices: Sequence[int], groups: Sequence[Any] | Mapping[int, Any] | None, budgets: Sequence[int], seed: int = 0
) -> dict[int, list[int]]:
    """Nested subsets of the frame indices ``indices``, one per label budget (budget 5 within 10 within 20).

    ``groups``: the group key of each frame, indexed by frame index (the same sequence given to
    :func:`split_by_group`, or a mapping frame index -> key); ``None``: every frame its own group.
    The pool is ordered once, with ``seed``: groups in a shuffled order, frames shuffled within each
    group, then dealt round-robin (one frame of each group in turn), so that a small budget covers as
    many groups as possible; budget ``b`` takes the first ``b`` frames of that order. Every subset is
    therefore contained in every larger one, and the same seed gives the same subsets.

    Returns ``{budget: sorted frame indices}`` (budget 0: ``[]``). Raises ``ValueError`` for a budget
    larger than the pool, naming both, a negative budget, or a frame index missing from ``groups``.
    """
    indices = [int(i) for i in indices]
    if len(set(indices)) != len(indices):
        raise ValueError("indices contain duplicates: each frame can be labelled only once")
    pool = len(indices)
    checked = []
    for budget in budgets:
        if isinstance(budget, bool) or int(budget) != budget or budget < 0:
            raise ValueError(f"a label budget must be a whole number >= 0, got {budget!r}")
        if budget > pool:
            raise ValueError(
                f"label budget {int(budget)} exceeds the pool of {pool} labelled frame(s) available for "
                f"training; label more configurations or use budgets <= {pool}"
            )
        checked.append(int(budget))
    if groups is None:
        keys = {i: i for i in indices}
    else:
        keys = {}
        for i in indices:
            try:
                keys[i] = groups[i]
            except (IndexError, KeyError) as exc:
                raise ValueError(
                    f"frame index {i} has no group: `groups` must give the group of every frame of the "
                    f"dataset, indexed by frame index ({len(groups)} given)"
                ) from exc
    rng = np.random.default_rng(seed)
    members = _ordered_groups([keys[i] for i in indices])
    group_order = [list(members)[k] for k in rng.permutation(len(members))]
    queues = [[indices[k] for k in rng.permutation(members[key])] for key in group_order]
    order: list[int] = []
    depth = 0
    while len(order) < pool:
        for queue in queues:
            if depth < len(queue):
                order.append(queue[depth])
        depth += 1
    return {budget: sorted(order[:budget]) for budget in checked}
