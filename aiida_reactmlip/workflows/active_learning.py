"""``reactmlip.active_learning``: the closed loop explore -> select -> DFT label -> fine-tune -> evaluate.

One round::

    explore   reactmlip.md (+ rattles, + an MLIP NEB band) with the current model -> candidate pool;
              in oracle mode the pool is a fixed, already DFT-labelled dataset (``label_pool``)
    committee the current model + (committee_size - 1) fine-tunes of the base model with other seeds
              (or on bootstrap resamples) of the labels so far, each evaluated on the pool
    select    aiida_reactmlip.selection (random | committee | fps | committee+fps): k pool frames
    label     LabelWorkChain (pw.x) on the selected frames; oracle mode: select_frames from the pool
    merge     merge_datasets: all labels so far
    fine-tune reactmlip.finetune of the base model on all labels
    evaluate  reactmlip.evaluate + reactmlip.compute_metrics on the fixed DFT validation set
    stop?     target force / energy MAE reached, DFT budget spent, max_rounds, pool exhausted

Round 0 is the starting point: the base model (or, with ``initial_dataset``, the base model fine-tuned
on it) evaluated on the validation set, so every curve starts at the zero-shot error.

Every node of round i is called with a link label ``round_<ii>__<step>`` and its results are outputs
``rounds.round_<ii>.{pool,selected,labels,model,metrics}``; the whole error curve is the ``summary``
output (made by a calcfunction from the metrics nodes) and, while the loop runs, the extra
``loop_progress`` of the WorkChain node. AiiDA checkpoints the WorkChain between steps; with caching
enabled (``aiida.calculations:quantumespresso.pw``, ``reactmlip.finetune``, ``reactmlip.evaluate``,
``reactmlip.md``), running a crashed loop again with the same inputs reuses every finished DFT label,
fine-tune and evaluation: everything is seeded, so the same inputs give the same selections.
"""

from __future__ import annotations

import time

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction, if_, while_
from aiida.plugins import CalculationFactory

from aiida_reactmlip.calculations.evaluate import EvaluateCalculation
from aiida_reactmlip.calculations.functions import compute_metrics
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.metrics.loop import labels_this_round, stop_reason
from aiida_reactmlip.workflows.label import LabelWorkChain

#: Strategies that need a committee of models (their force disagreement on the pool).
COMMITTEE_STRATEGIES = ("committee", "committee+fps")
#: How the extra committee members differ from the current model.
COMMITTEE_MODES = ("seeds", "bootstrap")
#: Where each round's fine-tune starts from.
FINETUNE_FROM = ("base", "previous")
#: Name of the extra on the WorkChain node that holds the per-round progress rows.
PROGRESS_EXTRA = "loop_progress"


def round_key(index: int) -> str:
    """``round_03`` for round 3: the prefix of the round's link labels and outputs."""
    return f"round_{index:02d}"


def known_strategies() -> list[str]:
    """Names of the registered selection strategies (:func:`aiida_reactmlip.selection.available_strategies`)."""
    from aiida_reactmlip.selection import available_strategies

    return available_strategies()


# --------------------------------------------------------------------------------- calcfunctions


def split_forces(forces: np.ndarray, n_atoms) -> list[np.ndarray]:
    """Concatenated forces (sum n_atoms, 3) -> one (n_atoms_i, 3) array per frame."""
    offsets = np.concatenate([[0], np.cumsum(np.asarray(n_atoms, dtype=int))])
    return [np.asarray(forces[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1)]


@calcfunction
def select_candidates(pool: LabelledDatasetData, parameters: orm.Dict, **predictions: orm.ArrayData) -> dict:
    """Pick pool frames to label: ``selection.select`` with ``parameters`` (``strategy``, ``k``, ``seed``,
    ``already_selected``: pool indices labelled before, never picked again) and, for committee
    strategies, the committee's ``predictions`` (one ArrayData per member, forces in eV/Å).

    Outputs ``selected`` (List of pool indices, in selection order) and ``scores`` (Dict: the strategy,
    the per-frame committee force standard deviation in eV/Å when a committee was given).
    """
    from aiida_reactmlip import selection

    params = parameters.get_dict()
    images = pool.to_atoms()
    committee_forces = None
    scores: dict = {"strategy": params["strategy"], "k": int(params["k"]), "seed": int(params["seed"]),
                    "n_pool": len(images)}
    if predictions:
        committee_forces = [
            split_forces(node.get_array("forces"), node.get_array("n_atoms")) for _, node in sorted(predictions.items())
        ]
        std = selection.committee_force_std(committee_forces)
        scores["committee_force_std"] = [float(v) for v in np.asarray(std, dtype=float).ravel()]
    selected = selection.select(
        params["strategy"],
        int(params["k"]),
        pool_images=images,
        committee_forces=committee_forces,
        already_selected=list(params.get("already_selected", [])),
        seed=int(params["seed"]),
    )
    selected = [int(i) for i in selected]
    scores["selected"] = selected
    return {"selected": orm.List(selected), "scores": orm.Dict(scores)}


@calcfunction
def structures_to_dataset(**structures: orm.StructureData) -> LabelledDatasetData:
    """Unlabelled start frames (a dataset) from StructureData, in key order; the keys become frame names."""
    images = []
    for key, structure in sorted(structures.items()):
        atoms = structure.get_ase()
        atoms.info = {"name": key, **{k: v for k, v in structure.base.extras.all.items()
                                      if isinstance(v, (str, int, float, bool)) and not k.startswith("_")}}
        images.append(atoms)
    return LabelledDatasetData.from_atoms(images)


@calcfunction
def rattle_dataset(dataset: LabelledDatasetData, parameters: orm.Dict) -> LabelledDatasetData:
    """``n`` rattled copies of every frame of ``dataset`` (Gaussian, ``stdev`` Å per component, ``seed``);
    labels dropped (they are candidates for DFT)."""
    from aiida_reactmlip.generate.rattle import rattle

    params = {"n": 2, "stdev": 0.05, "seed": 0, **parameters.get_dict()}
    images = []
    for index, atoms in enumerate(dataset.frames.to_atoms()):
        atoms.calc = None
        info = {k: v for k, v in atoms.info.items() if k not in ("energy", "stress", "source_uuid")}
        atoms.info = info
        for new in rattle(atoms, int(params["n"]), float(params["stdev"]), seed=int(params["seed"]) + index,
                          name=str(info.get("name", f"start-{index}"))):
            new.info.setdefault("group", f"rattle-{info.get('name', index)}")
            images.append(new)
    return LabelledDatasetData.from_atoms(images)


@calcfunction
def pool_structures(pool: LabelledDatasetData, selected: orm.List) -> dict:
    """One StructureData per selected pool frame (keys ``frame_<pool index>``), for DFT labelling."""
    frames = pool.frames
    result = {}
    for index in selected.get_list():
        atoms = frames.subset([index]).to_atoms()[0]
        atoms.calc = None
        result[f"frame_{index:04d}"] = orm.StructureData(ase=atoms)
    return result


@calcfunction
def bootstrap_indices(n_frames: orm.Int, seed: orm.Int) -> orm.List:
    """A bootstrap resample (with replacement, then made unique and sorted) of ``n_frames`` frame indices."""
    rng = np.random.default_rng(int(seed.value))
    n = int(n_frames.value)
    picked = sorted({int(i) for i in rng.integers(0, n, size=n)})
    return orm.List(picked)


@calcfunction
def make_summary(info: orm.Dict, **nodes: orm.Data) -> orm.Dict:
    """The error curve of the loop: one row per round from the round's ``metrics_<ii>`` (compute_metrics
    output), ``selected_<ii>`` (List) and ``labels_<ii>`` (dataset) nodes, with ``info`` (loop settings,
    stop reason, wall seconds per round)."""
    data = info.get_dict()
    rows = []
    for row in data.pop("rounds"):
        key = f"{row['round']:02d}"
        metrics = nodes[f"metrics_{key}"].get_dict()
        row = dict(row)
        row["force_mae"] = metrics.get("force_mae")
        row["energy_mae_per_atom"] = metrics.get("energy_mae_per_atom")
        row["force_rmse"] = metrics.get("force_rmse")
        row["metrics_uuid"] = nodes[f"metrics_{key}"].uuid
        if f"selected_{key}" in nodes:
            row["selected"] = nodes[f"selected_{key}"].get_list()
        labels = nodes.get(f"labels_{key}")
        row["n_labels"] = 0 if labels is None else int(labels.base.attributes.get("n_frames"))
        rows.append(row)
    data["rounds"] = rows
    data["n_labels"] = [r["n_labels"] for r in rows]
    data["force_mae"] = [r["force_mae"] for r in rows]
    data["energy_mae_per_atom"] = [r["energy_mae_per_atom"] for r in rows]
    return orm.Dict(data)


# --------------------------------------------------------------------------------- validation


def _scoring_error(validation: LabelledDatasetData, settings: dict) -> str | None:
    """Whether the validation set can be scored with these metric settings (DFT against itself), else why not."""
    from aiida_reactmlip.calculations.functions import frame_groups
    from aiida_reactmlip.metrics import compare

    frames = validation.frames
    reference = settings.get("energy_reference", "relative:min")
    labels = {"energies": frames.energies, "forces": frames.forces}
    numbers = [frames.numbers[start : start + n] for start, n in zip(frames.offsets, frames.n_atoms)]
    try:
        compare(labels, labels, n_atoms=frames.n_atoms, groups=frame_groups(frames), reference=reference,
                numbers=numbers)
    except ValueError as exception:
        return (f"validation pk {validation.pk} cannot be scored with energy_reference {reference!r}: {exception}; "
                "give a validation set with several frames per group, or another metrics_settings energy_reference")
    return None


def _label_error(label, inputs) -> str | None:
    """The checks of LabelWorkChain that do not need the (not yet selected) structures: protocol, pseudo
    family, and that the family covers every element of the start structures."""
    from aiida.common.exceptions import NotExistent

    from aiida_reactmlip.qe_settings import available_protocols

    protocol = label.get("protocol")
    if protocol is not None and protocol.value not in available_protocols():
        return f"label.protocol {protocol.value!r} unknown; available: {', '.join(available_protocols())}"
    family_label = label["pseudo_family"].value
    try:
        family = orm.load_group(family_label)
    except NotExistent:
        return f"pseudopotential family {family_label!r} not found; run `reactmlip setup` or `aiida-pseudo list`"
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
    if inputs["k"].value < 1:
        return f"k (configurations labelled per round) must be >= 1, got {inputs['k'].value}"
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
    else:
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
    from aiida_reactmlip.calculations.finetune import check_hyperparameters
    from aiida_reactmlip.training import FINETUNE_FAMILIES

    if model.family not in FINETUNE_FAMILIES:
        return (f"base_model {model.model_name} is a {model.family} model, which cannot be fine-tuned here; "
                f"fine-tunable families: {', '.join(FINETUNE_FAMILIES)}")
    if "finetune_parameters" in inputs:
        message = check_hyperparameters(model.family, inputs["finetune_parameters"].get_dict())
        if message:
            return f"finetune_parameters: {message}"
    return None


class ActiveLearningWorkChain(WorkChain):
    """Closed active-learning loop: the MLIP explores, DFT labels the few configurations that matter.

    Stops when every target given is met (``target_force_mae`` eV/Å, ``target_energy_mae`` eV/atom, on
    the validation set), when ``max_dft_labels`` labels are spent, after ``max_rounds`` rounds, or when
    the candidate pool is exhausted (oracle mode). Not reaching a target is not a failure: the
    ``summary`` says why the loop stopped and what error it reached.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("base_model", valid_type=MlipModelData, help="The universal model every fine-tune starts from.")
        spec.input("runner_code", valid_type=orm.AbstractCode, help="Code of reactmlip-runner (MD, fine-tune, evaluate).")
        spec.input("validation", valid_type=LabelledDatasetData,
                   help="Fixed DFT validation set: the error of every round is measured on it.")
        # candidate pool: oracle mode or exploration mode
        spec.input("label_pool", valid_type=LabelledDatasetData, required=False,
                   help="Oracle mode: a DFT-labelled candidate pool; labelling = taking the selected frames.")
        spec.input_namespace("structures", valid_type=orm.StructureData, dynamic=True, required=False,
                             help="Exploration mode: start structures for MD / rattles / NEB.")
        spec.input("start_dataset", valid_type=LabelledDatasetData, required=False,
                   help="Exploration mode: start frames as a dataset (labels unused).")
        spec.input("md", valid_type=orm.Dict, required=False,
                   help="reactmlip.md parameters for the exploration (seed + round index per round).")
        spec.input("rattle", valid_type=orm.Dict, required=False,
                   help="Rattled copies of the start frames added to the pool: {n, stdev (Å), seed}.")
        spec.input("neb", valid_type=orm.Dict, required=False,
                   help="reactmlip.neb settings: an MLIP NEB band between the two start frames joins the pool.")
        spec.input("initial_dataset", valid_type=LabelledDatasetData, required=False,
                   help="DFT labels available before round 1 (round 0 fine-tunes on them).")
        # selection
        spec.input("strategy", valid_type=orm.Str, default=lambda: orm.Str("committee"),
                   help="Selection strategy: random | committee | fps | committee+fps.")
        spec.input("initial_strategy", valid_type=orm.Str, default=lambda: orm.Str("random"),
                   help="Strategy of a round that starts with no labels (a committee needs labels).")
        spec.input("k", valid_type=orm.Int, default=lambda: orm.Int(4), help="Configurations labelled per round.")
        spec.input("committee_size", valid_type=orm.Int, default=lambda: orm.Int(3),
                   help="Models in the committee, the current model included.")
        spec.input("committee_mode", valid_type=orm.Str, default=lambda: orm.Str("seeds"),
                   help="seeds: other fine-tune seeds; bootstrap: other seeds on bootstrap resamples of the labels.")
        spec.input("seed", valid_type=orm.Int, default=lambda: orm.Int(0),
                   help="Seeds selection (seed + round), fine-tunes and MD.")
        # stopping
        spec.input("target_force_mae", valid_type=orm.Float, required=False, help="Stop at this force MAE (eV/Å).")
        spec.input("target_energy_mae", valid_type=orm.Float, required=False,
                   help="Stop at this energy MAE (eV/atom); with both targets, both must be met.")
        spec.input("max_dft_labels", valid_type=orm.Int, required=False, help="DFT budget: labels in total.")
        spec.input("max_rounds", valid_type=orm.Int, default=lambda: orm.Int(5), help="Rounds at most.")
        # fine-tuning and evaluation
        spec.input("finetune_parameters", valid_type=orm.Dict, required=False,
                   help="Hyperparameters of reactmlip.finetune (the seed is set per model).")
        spec.input("finetune_from", valid_type=orm.Str, default=lambda: orm.Str("base"),
                   help="base: every round fine-tunes the base model on all labels; previous: the last model.")
        spec.input("evaluate_settings", valid_type=orm.Dict, required=False, help="Settings of reactmlip.evaluate.")
        spec.input("metrics_settings", valid_type=orm.Dict,
                   default=lambda: orm.Dict({"energy_reference": "relative:min"}),
                   help="compute_metrics settings for the validation error.")
        spec.input("options", valid_type=orm.Dict, required=False,
                   help="metadata.options for the runner jobs (MD, fine-tune, evaluate).")
        spec.expose_inputs(LabelWorkChain, namespace="label", exclude=("structures",),
                           namespace_options={"required": False, "populate_defaults": False,
                                              "help": "DFT labelling (exploration mode): pw_code, pseudo_family, "
                                              "protocol, options..."})
        # LabelWorkChain's own validator needs its structures, which each round selects: it runs when the
        # round submits it; validate_inputs checks the pseudo family and protocol up front.
        spec.inputs["label"].validator = None
        spec.inputs.validator = validate_inputs

        spec.outline(
            cls.setup,
            if_(cls.has_initial_labels)(cls.run_initial_finetune, cls.inspect_finetune),
            cls.run_validation,
            cls.inspect_validation,
            while_(cls.should_continue)(
                cls.start_round,
                if_(cls.explores)(cls.run_exploration, cls.inspect_exploration),
                if_(cls.uses_committee)(
                    cls.run_committee, cls.inspect_committee, cls.run_committee_predictions, cls.inspect_predictions
                ),
                cls.select,
                cls.run_labelling,
                cls.inspect_labelling,
                cls.run_finetune,
                cls.inspect_finetune,
                cls.run_validation,
                cls.inspect_validation,
            ),
            cls.finalize,
        )
        spec.output("model", valid_type=MlipModelData, help="The model of the last round.")
        spec.output("dataset", valid_type=LabelledDatasetData, required=False, help="All DFT labels of the loop.")
        spec.output("summary", valid_type=orm.Dict,
                    help="rounds (round, n_labels, n_new, force_mae eV/Å, energy_mae_per_atom eV/atom, selected, "
                    "strategy, seconds), stop_reason, settings.")
        spec.output_namespace("rounds", valid_type=orm.Data, dynamic=True,
                              help="round_<ii>: pool, selected, scores, labels, model, metrics.")
        spec.exit_code(410, "ERROR_EXPLORATION_FAILED", message="Exploration failed in round {round}: {message}")
        spec.exit_code(420, "ERROR_COMMITTEE_FAILED", message="A committee model failed in round {round}: {message}")
        spec.exit_code(430, "ERROR_NOTHING_SELECTED", message="Round {round}: no candidate was selected ({message})")
        spec.exit_code(440, "ERROR_LABELLING_FAILED", message="DFT labelling failed in round {round}: {message}")
        spec.exit_code(450, "ERROR_FINETUNE_FAILED", message="Fine-tuning failed in round {round}: {message}")
        spec.exit_code(460, "ERROR_EVALUATION_FAILED", message="Validation failed in round {round}: {message}")

    # ------------------------------------------------------------------ helpers
    def _label(self, what: str) -> str:
        return f"{round_key(self.ctx.round)}__{what}"

    def _options(self) -> dict:
        return {"options": self.inputs.options.get_dict()} if "options" in self.inputs else {}

    def _out_round(self, name: str, node) -> None:
        self.out(f"rounds.{round_key(self.ctx.round)}.{name}", node)
        self.ctx.round_nodes.setdefault(round_key(self.ctx.round), {})[name] = node

    def _finetune_parameters(self, seed: int) -> orm.Dict:
        params = self.inputs.finetune_parameters.get_dict() if "finetune_parameters" in self.inputs else {}
        return orm.Dict({**params, "seed": int(seed)})

    def _submit_finetune(self, training, seed: int, label: str, start_model=None):
        FinetuneCalculation = CalculationFactory("reactmlip.finetune")
        inputs = {
            "code": self.inputs.runner_code,
            "base_model": start_model or self.inputs.base_model,
            "training": training,
            "parameters": self._finetune_parameters(seed),
            "model_name": orm.Str(f"{self.inputs.base_model.model_name}-al-{label}"),
            "metadata": {"call_link_label": label, **self._options()},
        }
        return self.submit(FinetuneCalculation, **inputs)

    def _submit_evaluate(self, model, dataset, label: str):
        inputs = {"code": self.inputs.runner_code, "model": model, "dataset": dataset,
                  "metadata": {"call_link_label": label, **self._options()}}
        if "evaluate_settings" in self.inputs:
            inputs["settings"] = self.inputs.evaluate_settings
        return self.submit(EvaluateCalculation, **inputs)

    def _progress(self, row: dict) -> None:
        self.ctx.rows.append(row)
        self.node.base.extras.set(PROGRESS_EXTRA, list(self.ctx.rows))

    # ------------------------------------------------------------------ round 0
    def setup(self):
        self.ctx.round = 0
        self.ctx.rows = []
        self.ctx.round_nodes = {}
        self.ctx.labels = self.inputs.initial_dataset if "initial_dataset" in self.inputs else None
        self.ctx.model = self.inputs.base_model
        self.ctx.pool_selected = []  # oracle mode: pool indices labelled so far
        self.ctx.stop_reason = None
        self.ctx.round_start = time.time()
        self.ctx.oracle = "label_pool" in self.inputs
        self.ctx.n_new = 0
        self.ctx.strategy_used = "base model"
        if not self.ctx.oracle:
            if "start_dataset" in self.inputs:
                self.ctx.start = self.inputs.start_dataset
            else:
                self.ctx.start = structures_to_dataset(
                    **self.inputs.structures, metadata={"call_link_label": "start_structures"}
                )
        self.node.base.extras.set(PROGRESS_EXTRA, [])

    def has_initial_labels(self):
        return self.ctx.labels is not None

    def run_initial_finetune(self):
        self.ctx.strategy_used = "initial dataset"
        self.ctx.n_new = self.ctx.labels.n_frames
        node = self._submit_finetune(self.ctx.labels, int(self.inputs.seed.value), self._label("finetune"))
        self.report(f"round 0: fine-tuning on the {self.ctx.labels.n_frames} initial labels: <{node.pk}>")
        return ToContext(finetune=node)

    # ------------------------------------------------------------------ the loop
    def should_continue(self):
        return self.ctx.stop_reason is None

    def start_round(self):
        self.ctx.round += 1
        self.ctx.round_start = time.time()
        self.ctx.committee = []

    def explores(self):
        return not self.ctx.oracle

    def run_exploration(self):
        seed = int(self.inputs.seed.value) + self.ctx.round
        futures = {}
        if "md" in self.inputs:
            MdCalculation = CalculationFactory("reactmlip.md")
            params = {**self.inputs.md.get_dict()}
            params["seed"] = int(params.get("seed", 0)) + seed
            node = self.submit(MdCalculation, code=self.inputs.runner_code, model=self.ctx.model,
                               structures=self.ctx.start, parameters=orm.Dict(params),
                               metadata={"call_link_label": self._label("md"), **self._options()})
            self.report(f"round {self.ctx.round}: MD with the current model <{node.pk}>")
            futures["explore_md"] = node
        if "neb" in self.inputs:
            MlipNebCalculation = CalculationFactory("reactmlip.neb")
            node = self.submit(MlipNebCalculation, code=self.inputs.runner_code, model=self.ctx.model,
                               images=self.ctx.start, settings=self.inputs.neb,
                               metadata={"call_link_label": self._label("neb"), **self._options()})
            self.report(f"round {self.ctx.round}: NEB band with the current model <{node.pk}>")
            futures["explore_neb"] = node
        return ToContext(**futures)

    def inspect_exploration(self):
        from aiida_reactmlip.calculations.split import merge_datasets

        parts = {}
        if "md" in self.inputs:
            node = self.ctx.explore_md
            if "trajectory" not in node.outputs:
                return self.exit_codes.ERROR_EXPLORATION_FAILED.format(
                    round=self.ctx.round, message=f"MD <{node.pk}> [{node.exit_status}] {node.exit_message}")
            parts["a_md"] = node.outputs.trajectory
        if "neb" in self.inputs:
            node = self.ctx.explore_neb
            if "band" not in node.outputs:
                return self.exit_codes.ERROR_EXPLORATION_FAILED.format(
                    round=self.ctx.round, message=f"NEB <{node.pk}> [{node.exit_status}] {node.exit_message}")
            parts["b_neb"] = node.outputs.band
        if "rattle" in self.inputs:
            params = self.inputs.rattle.get_dict()
            params["seed"] = int(params.get("seed", 0)) + 1000 * self.ctx.round + int(self.inputs.seed.value)
            parts["c_rattle"] = rattle_dataset(self.ctx.start, orm.Dict(params),
                                               metadata={"call_link_label": self._label("rattle")})
        if len(parts) == 1:
            self.ctx.pool = next(iter(parts.values()))
        else:
            self.ctx.pool = merge_datasets(**parts, metadata={"call_link_label": self._label("pool")})
        self.report(f"round {self.ctx.round}: candidate pool of {self.ctx.pool.n_frames} frames")
        return None

    def _pool(self):
        return self.inputs.label_pool if self.ctx.oracle else self.ctx.pool

    def _n_labels(self) -> int:
        return 0 if self.ctx.labels is None else int(self.ctx.labels.n_frames)

    def uses_committee(self):
        return self.inputs.strategy.value in COMMITTEE_STRATEGIES and self.ctx.labels is not None

    def run_committee(self):
        """Members 1..n-1: the base model fine-tuned with other seeds (or on bootstrap resamples) of the labels."""
        futures = {}
        seed = int(self.inputs.seed.value)
        for member in range(1, self.inputs.committee_size.value):
            training = self.ctx.labels
            member_seed = seed + 7919 * member
            if self.inputs.committee_mode.value == "bootstrap":
                from aiida_reactmlip.calculations.split import select_frames

                indices = bootstrap_indices(orm.Int(training.n_frames), orm.Int(member_seed + self.ctx.round),
                                            metadata={"call_link_label": self._label(f"bootstrap_{member:02d}")})
                training = select_frames(training, indices,
                                         metadata={"call_link_label": self._label(f"bootstrap_set_{member:02d}")})
            node = self._submit_finetune(training, member_seed, self._label(f"committee_{member:02d}"))
            futures[f"committee_{member:02d}"] = node
        self.report(f"round {self.ctx.round}: {len(futures)} committee fine-tune(s) on {self._n_labels()} labels")
        return ToContext(**futures)

    def inspect_committee(self):
        for member in range(1, self.inputs.committee_size.value):
            node = self.ctx[f"committee_{member:02d}"]
            if not node.is_finished_ok or "model" not in node.outputs:
                return self.exit_codes.ERROR_COMMITTEE_FAILED.format(
                    round=self.ctx.round, message=f"fine-tune <{node.pk}> [{node.exit_status}] {node.exit_message}")
        return None

    def run_committee_predictions(self):
        models = [self.ctx.model] + [self.ctx[f"committee_{m:02d}"].outputs.model
                                     for m in range(1, self.inputs.committee_size.value)]
        futures = {}
        for member, model in enumerate(models):
            futures[f"predict_{member:02d}"] = self._submit_evaluate(model, self._pool(), self._label(f"predict_{member:02d}"))
        return ToContext(**futures)

    def inspect_predictions(self):
        for member in range(self.inputs.committee_size.value):
            node = self.ctx[f"predict_{member:02d}"]
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_COMMITTEE_FAILED.format(
                    round=self.ctx.round, message=f"evaluate <{node.pk}> [{node.exit_status}] {node.exit_message}")
            self.ctx.committee.append(node.outputs.predictions)
        return None

    def select(self):
        pool = self._pool()
        pool_left = pool.n_frames - len(self.ctx.pool_selected) if self.ctx.oracle else pool.n_frames
        max_labels = self.inputs.max_dft_labels.value if "max_dft_labels" in self.inputs else None
        k = labels_this_round(self.inputs.k.value, self._n_labels(), max_labels, pool_left)
        strategy = self.inputs.strategy.value
        if strategy in COMMITTEE_STRATEGIES and not self.ctx.committee:  # no labels yet: no committee
            strategy = self.inputs.initial_strategy.value
        if k < 1:
            return self.exit_codes.ERROR_NOTHING_SELECTED.format(round=self.ctx.round, message="no budget or pool left")
        params = {"strategy": strategy, "k": k, "seed": int(self.inputs.seed.value) + self.ctx.round,
                  "already_selected": list(self.ctx.pool_selected) if self.ctx.oracle else []}
        predictions = {f"member_{i:02d}": node for i, node in enumerate(self.ctx.committee)}
        result = select_candidates(pool, orm.Dict(params), **predictions,
                                   metadata={"call_link_label": self._label("select")})
        selected = result["selected"]
        if not selected.get_list():
            return self.exit_codes.ERROR_NOTHING_SELECTED.format(round=self.ctx.round, message=f"strategy {strategy}")
        self.ctx.selected = selected
        self.ctx.strategy_used = strategy
        self._out_round("selected", selected)
        self._out_round("scores", result["scores"])
        if not self.ctx.oracle:
            self._out_round("pool", pool)
        self.report(f"round {self.ctx.round}: {strategy} selected pool frames {selected.get_list()}")
        return None

    def run_labelling(self):
        if self.ctx.oracle:
            from aiida_reactmlip.calculations.split import select_frames

            self.ctx.new_labels = select_frames(self.inputs.label_pool, self.ctx.selected,
                                                metadata={"call_link_label": self._label("label")})
            return None
        structures = pool_structures(self.ctx.pool, self.ctx.selected,
                                     metadata={"call_link_label": self._label("structures")})
        frame_info = self.ctx.pool.frame_info
        for key, structure in structures.items():
            info = frame_info[int(key.split("_")[-1])]
            extras = {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool))
                      and k not in ("energy", "source_uuid")}
            extras["round"] = self.ctx.round
            structure.base.extras.set_many(extras)
        inputs = dict(self.exposed_inputs(LabelWorkChain, namespace="label"))
        inputs["metadata"] = {**dict(inputs.get("metadata", {})), "call_link_label": self._label("label")}
        node = self.submit(LabelWorkChain, structures=dict(structures), **inputs)
        self.report(f"round {self.ctx.round}: labelling {len(structures)} configurations with pw.x <{node.pk}>")
        return ToContext(label=node)

    def inspect_labelling(self):
        from aiida_reactmlip.calculations.split import merge_datasets

        if not self.ctx.oracle:
            node = self.ctx.label
            if "dataset" not in node.outputs:
                return self.exit_codes.ERROR_LABELLING_FAILED.format(
                    round=self.ctx.round, message=f"LabelWorkChain<{node.pk}> [{node.exit_status}] {node.exit_message}")
            if not node.is_finished_ok:
                self.report(f"round {self.ctx.round}: warning: {node.exit_message}; going on with the labels that exist")
            self.ctx.new_labels = node.outputs.dataset
        else:
            self.ctx.pool_selected = list(self.ctx.pool_selected) + self.ctx.selected.get_list()
        new = self.ctx.new_labels
        self.ctx.n_new = int(new.n_frames)
        if self.ctx.labels is None:
            self.ctx.labels = new
        else:
            self.ctx.labels = merge_datasets(a_previous=self.ctx.labels, b_new=new,
                                             metadata={"call_link_label": self._label("merge")})
        self._out_round("labels", self.ctx.labels)
        return None

    def run_finetune(self):
        start = self.ctx.model if self.inputs.finetune_from.value == "previous" else None
        node = self._submit_finetune(self.ctx.labels, int(self.inputs.seed.value), self._label("finetune"), start)
        self.report(f"round {self.ctx.round}: fine-tuning on {self.ctx.labels.n_frames} labels <{node.pk}>")
        return ToContext(finetune=node)

    def inspect_finetune(self):
        node = self.ctx.finetune
        if not node.is_finished_ok or "model" not in node.outputs:
            return self.exit_codes.ERROR_FINETUNE_FAILED.format(
                round=self.ctx.round, message=f"<{node.pk}> [{node.exit_status}] {node.exit_message}")
        self.ctx.model = node.outputs.model
        self._out_round("model", self.ctx.model)
        return None

    def run_validation(self):
        node = self._submit_evaluate(self.ctx.model, self.inputs.validation, self._label("evaluate"))
        return ToContext(validation=node)

    def inspect_validation(self):
        node = self.ctx.validation
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_EVALUATION_FAILED.format(
                round=self.ctx.round, message=f"evaluate <{node.pk}> [{node.exit_status}] {node.exit_message}")
        metrics = compute_metrics(self.inputs.validation, node.outputs.predictions, self.inputs.metrics_settings,
                                  self.ctx.model, metadata={"call_link_label": self._label("metrics")})
        self._out_round("metrics", metrics)
        force_mae = metrics.get("force_mae")
        energy_mae = metrics.get("energy_mae_per_atom")
        pool_left = None
        if self.ctx.oracle:
            pool_left = self.inputs.label_pool.n_frames - len(self.ctx.pool_selected)
        self.ctx.stop_reason = stop_reason(
            n_rounds=self.ctx.round,
            n_labels=self._n_labels(),
            force_mae=force_mae,
            energy_mae=energy_mae,
            target_force_mae=self.inputs.target_force_mae.value if "target_force_mae" in self.inputs else None,
            target_energy_mae=self.inputs.target_energy_mae.value if "target_energy_mae" in self.inputs else None,
            max_dft_labels=self.inputs.max_dft_labels.value if "max_dft_labels" in self.inputs else None,
            max_rounds=self.inputs.max_rounds.value,
            pool_left=pool_left,
        )
        row = {
            "round": self.ctx.round,
            "n_labels": self._n_labels(),
            "n_new": self.ctx.n_new,
            "strategy": self.ctx.strategy_used,
            "force_mae": force_mae,
            "energy_mae_per_atom": energy_mae,
            "seconds": round(time.time() - self.ctx.round_start, 2),
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "model_uuid": self.ctx.model.uuid,
            "metrics_pk": metrics.pk,
        }
        if self.ctx.round:
            row["selected"] = self.ctx.selected.get_list()
        self._progress(row)
        energy = f", energy MAE {energy_mae:.4f} eV/atom" if energy_mae is not None else ""
        self.report(f"round {self.ctx.round}: {row['n_labels']} labels, force MAE {force_mae:.4f} eV/Å{energy}"
                    + (f"; stopping: {self.ctx.stop_reason}" if self.ctx.stop_reason else ""))
        return None

    def finalize(self):
        info = {
            "rounds": [{k: v for k, v in row.items() if k in ("round", "n_new", "strategy", "seconds", "finished_at",
                                                              "model_uuid")} for row in self.ctx.rows],
            "stop_reason": self.ctx.stop_reason,
            "mode": "oracle" if self.ctx.oracle else "exploration",
            "strategy": self.inputs.strategy.value,
            "initial_strategy": self.inputs.initial_strategy.value,
            "k": self.inputs.k.value,
            "committee_size": self.inputs.committee_size.value,
            "committee_mode": self.inputs.committee_mode.value,
            "seed": self.inputs.seed.value,
            "finetune_from": self.inputs.finetune_from.value,
            "target_force_mae": self.inputs.target_force_mae.value if "target_force_mae" in self.inputs else None,
            "target_energy_mae": self.inputs.target_energy_mae.value if "target_energy_mae" in self.inputs else None,
            "max_dft_labels": self.inputs.max_dft_labels.value if "max_dft_labels" in self.inputs else None,
            "max_rounds": self.inputs.max_rounds.value,
            "base_model": self.inputs.base_model.model_name,
            "validation_uuid": self.inputs.validation.uuid,
            "pool_uuid": self.inputs.label_pool.uuid if self.ctx.oracle else None,
        }
        nodes = {}
        for row in self.ctx.rows:
            key = f"{row['round']:02d}"
            outputs = self.ctx.round_nodes[round_key(row["round"])]
            nodes[f"metrics_{key}"] = outputs["metrics"]
            if "selected" in outputs:
                nodes[f"selected_{key}"] = outputs["selected"]
            if "labels" in outputs:
                nodes[f"labels_{key}"] = outputs["labels"]
            elif row["round"] == 0 and "initial_dataset" in self.inputs:
                nodes[f"labels_{key}"] = self.inputs.initial_dataset
        summary = make_summary(orm.Dict(info), **nodes, metadata={"call_link_label": "summary"})
        self.out("summary", summary)
        self.out("model", self.ctx.model)
        if self.ctx.labels is not None:
            self.out("dataset", self.ctx.labels)
        self.report(f"stopped after round {self.ctx.round} ({self.ctx.stop_reason}); "
                    f"{self._n_labels()} DFT labels, force MAE {summary['force_mae'][-1]:.4f} eV/Å")



# --------------------------------------------------------------------------------- YAML loop specs

#: Keys of a loop file (``workchains/loop-*.yaml``).
LOOP_KEYS = {
    "name", "description", "model", "pool", "validation", "explore", "label", "initial", "strategy",
    "initial_strategy", "k", "committee_size", "committee_mode", "max_rounds", "max_dft_labels", "target_force_mae",
    "target_energy_mae", "seeds", "baseline", "finetune", "finetune_from", "evaluate", "energy_reference",
    "run_to_budget",
}
#: Ways to name a labelled dataset in a loop file.
DATASET_SOURCES = ("fixture", "dataset", "extxyz", "split")
#: Keys of the ``explore`` section.
EXPLORE_KEYS = {"system", "params", "roles", "md", "rattle", "neb"}


def _check_dataset_entry(entry, what: str, path, allow_split: bool) -> None:
    if not isinstance(entry, dict) or len(set(entry) & set(DATASET_SOURCES)) != 1:
        allowed = [s for s in DATASET_SOURCES if allow_split or s != "split"]
        raise ValueError(f"{path}: '{what}' must name exactly one of {', '.join(allowed)}, got {entry!r}")
    if "split" in entry and not allow_split:
        raise ValueError(f"{path}: '{what}' cannot be a split")


def load_loop_spec(path) -> dict:
    """Read and check a loop file; errors name the file and the offending key or value.

    Returns the spec as a dict with defaults filled (``seeds`` a list, ``baseline`` None or 'random').
    """
    import pathlib

    from aiida_reactmlip.workflows.spec_files import read_spec_file

    path = pathlib.Path(path)
    data = read_spec_file(path, "loop", LOOP_KEYS)
    for key in ("name", "model", "validation"):
        if not data.get(key):
            raise ValueError(f"{path}: '{key}' is required")
    if ("pool" in data) == ("explore" in data):
        raise ValueError(f"{path}: give either 'pool' (oracle mode: a DFT-labelled candidate pool) or 'explore' "
                         "(MD / rattles / NEB with the current model, pw.x labels), not both and not neither")
    if "pool" in data:
        _check_dataset_entry(data["pool"], "pool", path, allow_split=False)
    _check_dataset_entry(data["validation"], "validation", path, allow_split="pool" in data)
    if "initial" in data:
        _check_dataset_entry(data["initial"], "initial", path, allow_split=False)
    if "explore" in data:
        explore = data["explore"]
        if not isinstance(explore, dict) or "system" not in explore:
            raise ValueError(f"{path}: 'explore' needs a library 'system' to start from")
        unknown = sorted(set(explore) - EXPLORE_KEYS)
        if unknown:
            raise ValueError(f"{path}: unknown explore key(s) {', '.join(unknown)}; known: {', '.join(sorted(EXPLORE_KEYS))}")
        from aiida_reactmlip.systems import list_systems

        if explore["system"] not in list_systems():
            raise ValueError(f"{path}: unknown system {explore['system']!r}; see `reactmlip systems list`")
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


def resolve_dataset(entry: dict, base_dir=None):
    """The stored LabelledDatasetData named by a loop-file entry: ``{fixture: NAME}`` (``fixtures/datasets``,
    see :mod:`aiida_reactmlip.datasets`), ``{dataset: PK or UUID}``, ``{extxyz: PATH}`` (relative to the file)."""
    import pathlib

    if "dataset" in entry:
        node = orm.load_node(entry["dataset"])
        if not isinstance(node, LabelledDatasetData):
            raise ValueError(f"node {entry['dataset']} is a {type(node).__name__}, not a LabelledDatasetData")
        return node
    if "extxyz" in entry:
        file = pathlib.Path(entry["extxyz"])
        if not file.is_absolute() and base_dir is not None and not file.exists():
            file = pathlib.Path(base_dir) / file
        return _stored_once(LabelledDatasetData.from_extxyz(str(file)))
    from aiida_reactmlip.datasets import fixture_path

    return _stored_once(LabelledDatasetData.from_extxyz(str(fixture_path(entry["fixture"]))))


def _stored_once(node):
    """``node`` stored, or the oldest stored dataset with the same frames (extra ``content_sha256``), so that
    running a loop file again gives the loop the same input nodes."""
    import hashlib
    import io

    from aiida_reactmlip.frames import write_extxyz

    if node.is_stored:
        return node
    buffer = io.StringIO()
    write_extxyz(node.frames, buffer)
    digest = hashlib.sha256(buffer.getvalue().encode()).hexdigest()
    query = orm.QueryBuilder().append(LabelledDatasetData, filters={"extras.content_sha256": digest}, tag="dataset")
    query.order_by({"dataset": {"id": "asc"}})
    existing = query.first(flat=True)
    if existing is not None:
        return existing
    node.store()
    node.base.extras.set("content_sha256", digest)
    return node


def loop_datasets(spec: dict) -> dict:
    """The pool (oracle mode), validation and initial datasets of a loop spec, stored.

    ``validation: {split: {validation_fraction, seed}}`` holds configuration groups of the pool out with
    ``reactmlip.split_dataset`` (the pool left is its ``train`` output), so no validation frame is a candidate.
    """
    import pathlib

    base_dir = pathlib.Path(spec.get("path", ".")).parent
    result = {}
    if "pool" in spec:
        pool = resolve_dataset(spec["pool"], base_dir)
        if "split" in spec["validation"]:
            from aiida_reactmlip.calculations.split import split_dataset

            params = {"test_fraction": 0.0, "validation_fraction": 0.25, "seed": 0, **spec["validation"]["split"]}
            parameters = orm.Dict(params)
            existing = _existing_split(pool, params)
            sets = existing if existing is not None else split_dataset(pool, parameters)
            result["label_pool"], result["validation"] = sets["train"], sets["validation"]
        else:
            result["label_pool"] = pool
            result["validation"] = resolve_dataset(spec["validation"], base_dir)
    else:
        result["validation"] = resolve_dataset(spec["validation"], base_dir)
    if "initial" in spec:
        result["initial_dataset"] = resolve_dataset(spec["initial"], base_dir)
    return result


def _existing_split(pool, params: dict):
    """The outputs of an earlier split_dataset of ``pool`` with the same parameters (reruns share them)."""
    query = orm.QueryBuilder()
    query.append(LabelledDatasetData, filters={"id": pool.pk}, tag="pool")
    query.append(orm.CalcFunctionNode, with_incoming="pool", tag="split",
                 filters={"attributes.process_label": "split_dataset"})
    for (node,) in query.iterall():
        if "parameters" in node.inputs and node.inputs.parameters.get_dict() == params and node.is_finished_ok:
            return {"train": node.outputs.train, "validation": node.outputs.validation}
    return None


def loop_builder(spec: dict, seed: int, strategy: str | None = None, datasets: dict | None = None):
    """A builder of ActiveLearningWorkChain for one seed of a loop spec (``strategy`` overrides the spec's,
    e.g. 'random' for the baseline with the same budget, seed and fine-tuning)."""
    from aiida_reactmlip import provision

    computer = provision.ensure_localhost()
    codes = provision.ensure_codes(computer)
    model = provision.ensure_registry_models([spec["model"]])[spec["model"]]
    datasets = datasets if datasets is not None else loop_datasets(spec)
    builder = ActiveLearningWorkChain.get_builder()
    builder.base_model = model
    builder.runner_code = codes["runner"]
    for key, node in datasets.items():
        builder[key] = node
    builder.strategy = orm.Str(strategy or spec["strategy"])
    builder.seed = orm.Int(int(seed))
    targets = () if spec.get("run_to_budget") else ("target_force_mae", "target_energy_mae")
    for key, kind in (("initial_strategy", orm.Str), ("k", orm.Int), ("committee_size", orm.Int),
                      ("committee_mode", orm.Str), ("max_rounds", orm.Int), ("max_dft_labels", orm.Int),
                      ("target_force_mae", orm.Float), ("target_energy_mae", orm.Float),
                      ("finetune_from", orm.Str)):
        if key.startswith("target") and key not in targets:
            continue  # run_to_budget: the target only scores the comparison, every loop spends the budget
        if spec.get(key) is not None:
            builder[key] = kind(spec[key])
    if spec.get("finetune"):
        builder.finetune_parameters = orm.Dict(spec["finetune"])
    if spec.get("evaluate"):
        builder.evaluate_settings = orm.Dict(spec["evaluate"])
    if spec.get("energy_reference"):
        builder.metrics_settings = orm.Dict({"energy_reference": spec["energy_reference"]})
    if "explore" in spec:
        from aiida_reactmlip.systems import get_system
        from aiida_reactmlip.workflows.campaign import choose_pseudo_family
        from aiida_reactmlip.workflows.label import structures_from_atoms

        explore = spec["explore"]
        system = get_system(explore["system"], **explore.get("params", {}))
        roles = explore.get("roles")
        atoms = [a for a in system.configurations if roles is None or a.info.get("role") in roles]
        if not atoms:
            raise ValueError(f"system {explore['system']} has no configuration with role(s) {roles}")
        builder.structures = structures_from_atoms(atoms)
        for key in ("md", "rattle", "neb"):
            if explore.get(key) is not None:
                builder[key] = orm.Dict(explore[key])
        label = dict(spec.get("label") or {})
        elements = {s for a in atoms for s in a.get_chemical_symbols()}
        builder.label.pw_code = codes["pw"]
        builder.label.pseudo_family = orm.Str(choose_pseudo_family(elements, label.get("pseudo_family")))
        builder.label.protocol = orm.Str(label.get("protocol", "fast"))
        processes = int(label.get("pw_processes", 1))
        builder.label.options = orm.Dict({"resources": {"num_machines": 1, "num_mpiprocs_per_machine": processes},
                                          "withmpi": processes > 1, "max_wallclock_seconds": 3600})
    builder.metadata.label = f"loop {spec['name']} {strategy or spec['strategy']} seed {seed}"
    builder.metadata.description = spec.get("description", "")
    return builder
