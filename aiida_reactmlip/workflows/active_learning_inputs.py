"""Inputs of ``reactmlip.active_learning``: the allowed values and the checks made before the first job
(mode, strategy, stopping rules in eV/Å and eV/atom, elements, the validation set's scoring, hyperparameters)."""

from __future__ import annotations

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.selection import COMMITTEE_STRATEGIES

#: How the extra committee members differ from the current model.
COMMITTEE_MODES = ("seeds", "bootstrap")
#: Where each round's fine-tune starts from.
FINETUNE_FROM = ("base", "previous")


def known_strategies() -> list[str]:
    """Names of the registered selection strategies (:func:`aiida_reactmlip.selection.available_strategies`)."""
    from aiida_reactmlip.selection import available_strategies

    return available_strategies()


def _scoring_error(validation: LabelledDatasetData, settings: dict) -> str | None:
    """Whether the validation set can be scored with these metric settings (DFT against itself), else why not."""
    from aiida_reactmlip.metrics import compare
    from aiida_reactmlip.metrics.by_system import frame_groups

    frames = validation.frames
    reference = settings.get("energy_reference", "relative:min")
    labels = {"energies": frames.energies, "forces": frames.forces}
    numbers = [frames.numbers[start : start + n] for start, n in zip(frames.offsets, frames.n_atoms)]
    try:
        scored = compare(labels, labels, n_atoms=frames.n_atoms, groups=frame_groups(frames), reference=reference,
                         numbers=numbers)
        if "energy_note" in scored:  # the loop's rounds are scored on energies too: refuse it here
            raise ValueError(scored["energy_note"])
    except ValueError as exception:
        return (f"validation pk {validation.pk} cannot be scored with energy_reference {reference!r}: {exception}; "
                "give a validation set with several frames per group, or another metrics_settings energy_reference")
    return None


def _label_error(label, inputs) -> str | None:
    """The checks of LabelWorkChain that do not need the (not yet selected) structures: protocol, pseudo
    family, and that the family covers every element of the start structures."""
    from aiida_reactmlip.workflows.label import protocol_and_family

    family, message = protocol_and_family(label, prefix="label.")
    if message:
        return message
    family_label = label["pseudo_family"].value
    elements = {kind.symbol for structure in inputs.get("structures", {}).values() for kind in structure.kinds}
    if "start_dataset" in inputs:
        elements |= set(inputs["start_dataset"].elements)
    missing = sorted(elements - set(getattr(family, "elements", elements)))
    if missing:
        return f"pseudopotential family {family_label!r} has no pseudopotential for {', '.join(missing)}"
    return None


def validate_inputs(inputs, _):
    """Everything that can be checked before the first job: mode, strategy, stopping rules, elements."""
    oracle = "label_pool" in inputs
    start = bool(inputs.get("structures")) or "start_dataset" in inputs
    if oracle and start:
        return ("give either `label_pool` (oracle mode: a DFT-labelled candidate pool) or start `structures` / "
                "`start_dataset` to explore from, not both")
    if not oracle and not start:
        return "nothing to select from: give `label_pool` (oracle mode) or start `structures` / `start_dataset`"
    strategy = inputs["strategy"].value
    strategies = known_strategies()
    if strategy not in strategies:
        return f"unknown selection strategy {strategy!r}; available: {', '.join(strategies)}"
    initial = inputs["initial_strategy"].value
    if initial not in strategies or initial in COMMITTEE_STRATEGIES:
        return (f"initial_strategy {initial!r} must be a strategy that needs no committee "
                f"({', '.join(s for s in strategies if s not in COMMITTEE_STRATEGIES)})")
    barrier_loop = "target_barrier_error" in inputs
    if inputs["k"].value < (0 if barrier_loop else 1):
        return (f"k (configurations labelled per round) must be >= {0 if barrier_loop else 1}, got "
                f"{inputs['k'].value}" + ("" if barrier_loop else " (k = 0, the saddle alone, is for the barrier loop)"))
    if barrier_loop:
        if not inputs["target_barrier_error"].value > 0:
            return f"target_barrier_error must be > 0 eV, got {inputs['target_barrier_error'].value}"
        if oracle or "neb" not in inputs:
            return ("target_barrier_error (the barrier loop) needs exploration with an MLIP NEB band: give `neb` "
                    "settings and the two end states as start structures, not a label_pool")
        if "max_dft_labels" in inputs and inputs["max_dft_labels"].value < 2:
            return "the barrier loop's first check needs 2 DFT labels (initial state, saddle): max_dft_labels >= 2"
    if inputs["check_first"].value and (not barrier_loop or inputs["k"].value < 1):
        return ("check_first labels a barrier loop's saddle check before its k picks: it needs target_barrier_error "
                "and k >= 1 (k = 0 labels the check alone already)")
    if strategy in COMMITTEE_STRATEGIES and inputs["committee_size"].value < 2:
        return f"strategy {strategy!r} needs committee_size >= 2, got {inputs['committee_size'].value}"
    if inputs["committee_mode"].value not in COMMITTEE_MODES:
        return f"committee_mode must be one of {', '.join(COMMITTEE_MODES)}, got {inputs['committee_mode'].value!r}"
    if inputs["finetune_from"].value not in FINETUNE_FROM:
        return f"finetune_from must be one of {', '.join(FINETUNE_FROM)}, got {inputs['finetune_from'].value!r}"
    if inputs["max_rounds"].value < 1:
        return f"max_rounds must be >= 1, got {inputs['max_rounds'].value}"
    if "max_dft_labels" in inputs and inputs["max_dft_labels"].value < 1:
        return f"max_dft_labels must be >= 1, got {inputs['max_dft_labels'].value}"
    for name in ("target_force_mae", "target_energy_mae"):
        if name in inputs and not inputs[name].value > 0:
            return f"{name} must be > 0 (eV/Å for forces, eV/atom for energies), got {inputs[name].value}"
    model = inputs["base_model"]
    validation = inputs["validation"]
    if not validation.base.attributes.get("has_forces", 0):
        return f"validation dataset pk {validation.pk} has no DFT forces: the loop's error is a force MAE"
    message = _scoring_error(validation, inputs["metrics_settings"].get_dict())
    if message:
        return message
    datasets = {"validation": validation}
    if oracle:
        pool = inputs["label_pool"]
        datasets["label_pool"] = pool
        if pool.base.attributes.get("has_forces", 0) < pool.base.attributes.get("n_frames", 0):
            return f"label_pool pk {pool.pk}: every frame needs DFT energy and forces to be an oracle"
        shared = {u for u in pool.source_uuids if u} & {u for u in validation.source_uuids if u}
        if shared:
            return (f"label_pool pk {pool.pk} and validation pk {validation.pk} share {len(shared)} DFT label(s): "
                    "the validation set must be held out of the pool")
    if "test" in inputs:
        test = inputs["test"]
        datasets["test"] = test
        if not test.base.attributes.get("has_forces", 0):
            return f"test dataset pk {test.pk} has no DFT forces: the loop's error is a force MAE"
        held_from = {"validation": validation, **({"label_pool": inputs["label_pool"]} if oracle else {})}
        for name, other in held_from.items():
            if test.uuid == other.uuid:
                return (f"test pk {test.pk} is also the {name.replace('label_', '')}: the test set must be "
                        "separate from it")
            shared = {u for u in test.source_uuids if u} & {u for u in other.source_uuids if u}
            if shared:
                return (f"test pk {test.pk} and {name} pk {other.pk} share {len(shared)} DFT label(s): the test "
                        f"set must be separate from the {name.replace('label_', '')}")
    if not oracle:
        if "start_dataset" in inputs:
            datasets["start_dataset"] = inputs["start_dataset"]
        if not any(key in inputs for key in ("md", "rattle", "neb")):
            return "exploration mode needs at least one of `md`, `rattle` or `neb` to make a candidate pool"
        label = inputs.get("label", {})
        if "pw_code" not in label or "pseudo_family" not in label:
            return "exploration mode labels with pw.x: give `label.pw_code` and `label.pseudo_family`"
        message = _label_error(label, inputs)
        if message:
            return message
    if "initial_dataset" in inputs:
        datasets["initial_dataset"] = inputs["initial_dataset"]
    for name, dataset in datasets.items():
        missing = model.covers(dataset.base.attributes.get("elements", []))
        if missing:
            return (f"base_model {model.model_name} (pk {model.pk}) does not cover element(s) {', '.join(missing)} "
                    f"of {name} pk {dataset.pk}")
    for structure_key, structure in inputs.get("structures", {}).items():
        missing = model.covers(sorted({kind.symbol for kind in structure.kinds}))
        if missing:
            return f"base_model {model.model_name} does not cover element(s) {', '.join(missing)} of {structure_key}"
    from aiida_reactmlip.training import FINETUNE_FAMILIES, check_hyperparameters

    if model.family not in FINETUNE_FAMILIES:
        return (f"base_model {model.model_name} is a {model.family} model, which cannot be fine-tuned here; "
                f"fine-tunable families: {', '.join(FINETUNE_FAMILIES)}")
    if "finetune_parameters" in inputs:
        try:
            check_hyperparameters(model.family, inputs["finetune_parameters"].get_dict())
        except (ValueError, ImportError) as exception:
            return f"finetune_parameters: {exception}"
    return None
