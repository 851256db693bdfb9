"""Active-learning loop files (``workchains/loop-*.yaml``) -> ``reactmlip.active_learning`` builders, one per seed
(and strategy: the random baseline runs with the same budget, seed and fine-tuning).

A loop file::

    name: loop-ch4-smoke
    description: CH4 dissociation pool, committee selection vs random.
    model: chgnet-0.3.0                   # a registry model
    pool: {fixture: ch4-dissociation-pool}   # oracle mode: a DFT-labelled candidate pool, or
    # explore: {system: h2-dissociation, md: {...}, rattle: {...}, neb: {...}}   # exploration mode (pw.x labels)
    # label: {protocol: fast, pseudo_family: ..., pw_processes: 1}              # exploration mode
    validation: {split: {validation_fraction: 0.25, seed: 0}}   # whole groups of the pool held out, or a dataset
    initial: {extxyz: labels.extxyz}      # optional: DFT labels before round 1
    strategy: committee                   # random | committee | fps | committee+fps
    initial_strategy: random
    k: 2                                  # labels per round
    committee_size: 2
    committee_mode: seeds                 # seeds | bootstrap
    max_rounds: 2                         # and/or max_dft_labels; default max_rounds 5
    target_force_mae: 0.5                 # eV/Å on the validation set (target_energy_mae: eV/atom)
    # target_barrier_error: 0.05          # barrier loop (explore.neb): stop when the model's barrier and DFT
    #                                     # single points at its initial state and saddle agree (eV); k may be 0
    # check_first: true                   # barrier loop: label the saddle check alone, the k picks only if it fails
    run_to_budget: false                  # true: the target only scores the comparison
    seeds: [0]
    baseline: random                      # also run random selection with the same budget and seeds
    hyperparameters: {epochs: 2, batch_size: 2, learning_rate: 3.0e-4}   # of every fine-tune (old key: finetune)
    finetune_from: base                   # base | previous
    evaluate_settings: {device: cpu}      # reactmlip.evaluate settings (old key: evaluate)
    energy_reference: relative:min

Datasets (``pool``, ``validation``, ``initial``) take the forms of
:func:`aiida_reactmlip.specs.datasets.resolve_dataset`; paths are relative to the file.
"""

from __future__ import annotations

import pathlib

from aiida import orm

from aiida_reactmlip.specs.builders import set_dicts
from aiida_reactmlip.specs.codes import (
    check_computer,
    choose_pseudo_family,
    dft_options,
    local_codes,
    peek_registry_model,
    registry_model,
)
from aiida_reactmlip.specs.datasets import check_dataset_entry, held_out_split, peek_dataset, resolve_dataset
from aiida_reactmlip.specs.files import check_number, check_settings, read_spec_file

#: Keys of a loop file (``workchains/loop-*.yaml``).
LOOP_KEYS = {
    "name", "description", "model", "pool", "validation", "explore", "label", "initial", "strategy",
    "initial_strategy", "k", "committee_size", "committee_mode", "max_rounds", "max_dft_labels", "target_force_mae",
    "target_energy_mae", "seeds", "baseline", "hyperparameters", "finetune_from", "evaluate_settings",
    "energy_reference", "run_to_budget", "computer", "evidence", "target_barrier_error", "check_first",
}
#: Keys of the ``explore`` section.
EXPLORE_KEYS = {"system", "params", "roles", "md", "rattle", "neb"}
#: Loop-file keys passed to the WorkChain input of the same name, and the node type of each.
SCALAR_INPUTS = (("initial_strategy", orm.Str), ("k", orm.Int), ("committee_size", orm.Int),
                 ("committee_mode", orm.Str), ("max_rounds", orm.Int), ("max_dft_labels", orm.Int),
                 ("target_force_mae", orm.Float), ("target_energy_mae", orm.Float), ("finetune_from", orm.Str),
                 ("target_barrier_error", orm.Float), ("check_first", orm.Bool))


def _check_label(label, path) -> None:
    """ValueError unless an exploration loop's ``label`` settings have a positive ``pw_processes`` and names."""
    if not label:
        return
    check_number(label, "pw_processes", f"{path}: label", int, minimum=1)
    for key in ("protocol", "pseudo_family"):
        if label.get(key) is not None and not isinstance(label[key], str):
            raise ValueError(f"{path}: label '{key}' must be a name (a string), not {label[key]!r}")


def _check_explore(explore, path) -> None:
    if not isinstance(explore, dict) or "system" not in explore:
        raise ValueError(f"{path}: 'explore' needs a library 'system' to start from")
    unknown = sorted(set(explore) - EXPLORE_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown explore key(s) {', '.join(unknown)}; known: {', '.join(sorted(EXPLORE_KEYS))}")
    from aiida_reactmlip.systems import list_systems

    if explore["system"] not in list_systems():
        raise ValueError(f"{path}: unknown system {explore['system']!r}; see `reactmlip systems list`")


def load_loop_spec(path) -> dict:
    """Read and check a loop file; errors name the file and the offending key or value.

    Returns the spec as a dict with defaults filled (``seeds`` a list, ``baseline`` None or 'random',
    ``path`` the file) and the new names of renamed keys (:data:`aiida_reactmlip.specs.files.RENAMED_KEYS`).
    """
    from aiida_reactmlip.workflows.active_learning_inputs import known_strategies

    path = pathlib.Path(path)
    data = read_spec_file(path, "loop", LOOP_KEYS)
    for key in ("name", "model", *(() if "evidence" in data else ("validation",))):
        if not data.get(key):
            raise ValueError(f"{path}: '{key}' is required")
    if "evidence" in data:  # the protocol splits the pool itself: candidates, validation, test
        from aiida_reactmlip.specs.evidence import check_evidence

        data["evidence"] = check_evidence(data, path)
    if ("pool" in data) == ("explore" in data):
        raise ValueError(f"{path}: give either 'pool' (oracle mode: a DFT-labelled candidate pool) or 'explore' "
                         "(MD / rattles / NEB with the current model, pw.x labels), not both and not neither")
    if "pool" in data:
        check_dataset_entry(data["pool"], "pool", path)
    if "validation" in data:
        check_dataset_entry(data["validation"], "validation", path, allow_split="pool" in data)
    if "initial" in data:
        check_dataset_entry(data["initial"], "initial", path)
    if "explore" in data:
        _check_explore(data["explore"], path)
    check_settings(data, ("label", "hyperparameters", "evaluate_settings"), path)
    check_computer(data, path)
    _check_label(data.get("label"), path)
    for key, kind in SCALAR_INPUTS:
        if kind is orm.Int:  # k = 0 (the saddle check alone) only in a barrier loop
            check_number(data, key, path, int, minimum=0 if key == "k" and "target_barrier_error" in data else 1)
        elif kind is orm.Float:
            check_number(data, key, path, float, above=0)
        elif kind is orm.Bool:
            if data.get(key) is not None and not isinstance(data[key], bool):
                raise ValueError(f"{path}: '{key}' must be true or false, not {data[key]!r}")
        elif data.get(key) is not None and not isinstance(data[key], str):
            raise ValueError(f"{path}: '{key}' must be a name (a string), not {data[key]!r}")
    from aiida_reactmlip.models import get_model_spec

    get_model_spec(data["model"])  # raises naming the available models
    strategy = data.setdefault("strategy", "committee")
    if strategy not in known_strategies():
        raise ValueError(f"{path}: unknown strategy {strategy!r}; available: {', '.join(known_strategies())}")
    seeds = data.setdefault("seeds", [0])
    if isinstance(seeds, int):
        data["seeds"] = seeds = [seeds]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"{path}: 'seeds' must be an integer or a list of integers, got {seeds!r}")
    baseline = data.setdefault("baseline", None)
    if baseline not in (None, "random"):
        raise ValueError(f"{path}: 'baseline' must be 'random' (or left out), got {baseline!r}")
    if not any(key in data for key in ("max_rounds", "max_dft_labels")):
        data["max_rounds"] = 5
    data["path"] = str(path)
    return data


def check_before_storing(spec: dict) -> None:
    """ValueError, before the first node is stored, unless an oracle-mode loop's ``max_dft_labels`` and ``k`` fit
    in its pool and its model covers the elements of its datasets (pool, validation, initial: counted and read
    without storing them)."""
    path = spec.get("path")
    datasets = {key: peek_dataset(spec[key], path) for key in ("pool", "validation", "initial")
                if key in spec and not (isinstance(spec[key], dict) and "split" in spec[key])}
    if "pool" in datasets:
        n_frames = datasets["pool"].n_frames
        held_out = " (before the validation groups are held out of it)" if "validation" not in datasets else ""
        for key, what in (("max_dft_labels", "DFT labels in all"), ("k", "labels per round")):
            if spec.get(key) is not None and spec[key] > n_frames:
                raise ValueError(f"'{key}' asks for {spec[key]} {what}, but the pool has only {n_frames} frames"
                                 f"{held_out}: lower '{key}' or give a larger pool")
    model = peek_registry_model(spec["model"])
    for key, dataset in datasets.items():
        missing = model.covers(dataset.elements)
        if missing:
            raise ValueError(f"model {spec['model']} does not cover element(s) {', '.join(missing)} of the {key} "
                             f"dataset; it covers {', '.join(model.elements)}")


def loop_datasets(spec: dict) -> dict:
    """The pool (oracle mode), validation and initial datasets of a loop spec, stored.

    ``validation: {split: {validation_fraction, seed}}`` holds configuration groups of the pool out with
    ``reactmlip.split_dataset`` (the pool left is its ``train`` output), so no validation frame is a candidate.
    """
    path = spec.get("path")
    result = {}
    check_before_storing(spec)
    if "pool" in spec:
        pool = resolve_dataset(spec["pool"], path)
        if isinstance(spec["validation"], dict) and "split" in spec["validation"]:
            sets = held_out_split(pool, spec["validation"]["split"])
            result["label_pool"], result["validation"] = sets["train"], sets["validation"]
        else:
            result["label_pool"] = pool
            result["validation"] = resolve_dataset(spec["validation"], path)
    else:
        result["validation"] = resolve_dataset(spec["validation"], path)
    if "initial" in spec:
        result["initial_dataset"] = resolve_dataset(spec["initial"], path)
    return result


def evidence_datasets(spec: dict, split_seed: int) -> dict:
    """One split of an evidence-protocol loop: the pool's groups dealt into candidates (``label_pool``),
    ``validation`` (decides when a loop stops) and ``test`` (scores it), stored (an identical earlier split is
    reused); ``initial_dataset`` when the file has one."""
    from aiida_reactmlip.specs.evidence import split_parameters

    path = spec.get("path")
    check_before_storing(spec)
    pool = resolve_dataset(spec["pool"], path)
    sets = held_out_split(pool, split_parameters(spec["evidence"], split_seed))
    for name in ("train", "validation", "test"):
        if not sets[name].n_frames:
            raise ValueError(f"split seed {split_seed} of the pool ({pool.n_frames} frames) left the {name} set "
                             "empty: the pool needs more configuration groups, or other fractions")
    result = {"label_pool": sets["train"], "validation": sets["validation"], "test": sets["test"]}
    if "initial" in spec:
        result["initial_dataset"] = resolve_dataset(spec["initial"], path)
    return result


def _explore_inputs(builder, spec: dict, codes: dict) -> None:
    """The start structures, exploration settings and pw.x labelling of an exploration-mode loop."""
    from aiida_reactmlip.specs.builders import structures_from_atoms
    from aiida_reactmlip.systems import get_system

    explore = spec["explore"]
    system = get_system(explore["system"], **explore.get("params", {}))
    roles = explore.get("roles")
    atoms = [a for a in system.configurations if roles is None or a.info.get("role") in roles]
    if not atoms:
        raise ValueError(f"system {explore['system']} has no configuration with role(s) {roles}")
    builder.structures = structures_from_atoms(atoms)
    for key in ("md", "rattle", "neb"):
        if explore.get(key) is not None:  # an empty mapping: that exploration with its defaults
            builder[key] = orm.Dict(explore[key])
    label = dict(spec.get("label") or {})
    elements = {s for a in atoms for s in a.get_chemical_symbols()}
    builder.label.pw_code = codes["pw"]
    builder.label.pseudo_family = orm.Str(choose_pseudo_family(elements, label.get("pseudo_family")))
    builder.label.protocol = orm.Str(label.get("protocol", "fast"))
    builder.label.options = dft_options(int(label.get("pw_processes", 1)), 3600)


def loop_builder(spec: dict, seed: int, strategy: str | None = None, datasets: dict | None = None,
                 finetune_seed: int | None = None):
    """A builder of ActiveLearningWorkChain for one seed of a loop spec (``strategy`` overrides the spec's,
    e.g. 'random' for the baseline with the same budget, seed and fine-tuning; ``finetune_seed`` seeds the
    fine-tunes apart from the selection; ``datasets`` may hold a ``test`` set)."""
    from aiida_reactmlip.workflows.active_learning import ActiveLearningWorkChain

    codes = local_codes(spec.get("computer"))
    datasets = datasets if datasets is not None else loop_datasets(spec)
    builder = ActiveLearningWorkChain.get_builder()
    builder.base_model = registry_model(spec["model"])
    builder.runner_code = codes["runner"]
    for key, node in datasets.items():
        builder[key] = node
    builder.strategy = orm.Str(strategy or spec["strategy"])
    builder.seed = orm.Int(int(seed))
    if finetune_seed is not None:
        builder.finetune_seed = orm.Int(int(finetune_seed))
    for key, kind in SCALAR_INPUTS:
        if key in ("target_force_mae", "target_energy_mae") and spec.get("run_to_budget"):
            continue  # run_to_budget: the target only scores the comparison, every loop spends the budget
        if spec.get(key) is not None:
            builder[key] = kind(spec[key])
    reference = {"energy_reference": spec["energy_reference"]} if spec.get("energy_reference") else None
    set_dicts(builder, finetune_parameters=spec.get("hyperparameters"), evaluate_settings=spec.get("evaluate_settings"),
              metrics_settings=reference)
    if "explore" in spec:
        _explore_inputs(builder, spec, codes)
    builder.metadata.label = f"loop {spec['name']} {strategy or spec['strategy']} seed {seed}"
    builder.metadata.description = spec.get("description", "")
    return builder
