"""``reactmlip.finetune_study``: base models x label budgets -> fine-tuned models -> held-out metrics -> learning curves.

The question it answers: how many DFT labels of *my* system does a universal model need before it is
reliable for it, and what does it forget on the way?

1. The labelled pool is split by configuration group (``reactmlip.split_dataset``: the images of one path,
   the frames of one scan stay together) into train / validation / test.
2. Nested label budgets are drawn from the train split (``nested_budget_indices``, seeded: budget 5
   within 10 within 20) and selected as datasets (``reactmlip.select_frames``).
3. Every base model is fine-tuned on every budget > 0 (``reactmlip.finetune``, all in parallel or in
   waves of ``max_concurrent_jobs``), validated on the validation split.
4. Every model (budget 0 = the zero-shot base model, and each fine-tuned one) is evaluated
   (``reactmlip.evaluate``) on the test split and, when given, on a general reference set
   (``general_set``: bulk metals, gas molecules, clean surfaces) to measure forgetting.
5. ``reactmlip.compute_metrics`` gives the errors (reactive metrics included), ``scan_metrics`` the error of
   each bond scan's stretch (dissociation) energy, and
   ``make_learning_curve`` the learning curve of each model (:mod:`aiida_reactmlip.metrics.learning_curves`).

Every split, subset, model, prediction and metric is a node linked to what made it.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from aiida import orm
from aiida.engine import WorkChain, calcfunction, while_

from aiida_reactmlip.calculations.evaluate import EvaluateCalculation
from aiida_reactmlip.calculations.finetune import FinetuneCalculation
from aiida_reactmlip.calculations.functions import compute_metrics
from aiida_reactmlip.calculations.split import SPLIT_DEFAULTS, compute_split, select_frames, split_dataset
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData

#: job kinds of the study's queue
FINETUNE, EVALUATE = "finetune", "evaluate"


def _budgets(node: orm.List) -> list[int]:
    return [int(b) for b in node.get_list()]


def _check_budgets(values) -> str | None:
    if not values:
        return "`budgets` is empty: give the label budgets to study, e.g. [0, 5, 10, 20] (0 = zero-shot)"
    bad = [b for b in values if isinstance(b, bool) or not isinstance(b, int) or b < 0]
    if bad:
        return f"label budgets must be whole numbers >= 0, got {bad}"
    if len(set(values)) != len(values):
        return f"label budgets contain duplicates: {values}"
    return None


def resolve_hyperparameters(key: str, family: str, hyperparameters: dict, seed: int) -> dict:
    """Hyperparameters of base model ``key``: those given for its family, overridden by those given for
    ``key`` itself; ``seed`` is the study's unless one of them sets it."""
    params = {}
    for name in (family, key):
        node = hyperparameters.get(name)
        if node is not None:
            params.update(node.get_dict() if hasattr(node, "get_dict") else dict(node))
    params.setdefault("seed", int(seed))
    return params


def validate_inputs(inputs, _):
    """Refuse a study that cannot run, before any job starts.

    Checks: base models given; budgets whole, >= 0, unique; every base model covers every element of the
    pool and of the general set; a family with fine-tuning support for every model when a budget > 0;
    hyperparameters known to each family; the split possible, with a non-empty test set and a train
    split at least as large as the largest budget.
    """
    from aiida_reactmlip.models.loading import normalize_family
    from aiida_reactmlip.training import FINETUNE_FAMILIES, TrainingError, default_hyperparameters

    models = dict(inputs.get("base_models", {}))
    if not models:
        return "no base models given: pass at least one MlipModelData in the `base_models` namespace"
    budgets_node = inputs.get("budgets")
    values = budgets_node.get_list() if budgets_node is not None else []
    message = _check_budgets(values)
    if message:
        return message
    dataset = inputs.get("dataset")
    general = inputs.get("general_set")
    for key, model in sorted(models.items()):
        for what, data in (("the labelled pool", dataset), ("the general set", general)):
            if data is None:
                continue
            missing = model.covers(data.elements)
            if missing:
                return (f"base model {model.model_name} ({key}, pk {model.pk}) does not cover element(s) "
                        f"{', '.join(missing)} of {what} (dataset pk {data.pk}); it covers {', '.join(model.elements)}")
    hyperparameters = dict(inputs.get("hyperparameters", {}))
    families = {}
    for key, model in models.items():
        try:
            families[key] = normalize_family(model.family)
        except ValueError:  # not a family this package can load: said below if it should be fine-tuned
            families[key] = model.family
    unknown_keys = sorted(set(hyperparameters) - set(models) - set(families.values()))
    if unknown_keys:
        return (f"hyperparameters given for {', '.join(unknown_keys)}, which is neither a base model key "
                f"({', '.join(sorted(models))}) nor the family of one ({', '.join(sorted(set(families.values())))})")
    if any(b > 0 for b in values):
        for key, model in sorted(models.items()):
            family = families[key]
            if family not in FINETUNE_FAMILIES:
                return (f"base model {model.model_name} ({key}) is of family {family!r}, which has no fine-tuning "
                        f"support (supported: {', '.join(FINETUNE_FAMILIES)}); remove it or study budget 0 only")
            params = resolve_hyperparameters(key, family, hyperparameters, 0)
            try:
                known = default_hyperparameters(family)
            except TrainingError as exception:
                return f"base model {model.model_name} ({key}): {exception}"
            unknown = sorted(set(params) - set(known))
            if unknown:
                return (f"unknown {family} hyperparameter(s) {', '.join(unknown)} for {key}; "
                        f"known: {', '.join(sorted(known))}")
    if dataset is None:
        return None
    parameters = inputs.get("split_parameters")
    try:
        split = compute_split(dataset, parameters.get_dict() if parameters is not None else {})
    except ValueError as exception:
        return f"cannot split the labelled pool (dataset pk {dataset.pk}, {dataset.n_frames} frames): {exception}"
    n_train, n_test = len(split["train"]), len(split["test"])
    if not n_test:
        return (f"the test split of the labelled pool (dataset pk {dataset.pk}) is empty: set "
                f"split_parameters.test_fraction > 0, the held-out errors are what the study measures")
    largest = max(values)
    if largest > n_train:
        return (f"label budget {largest} exceeds the training split: {n_train} of the pool's {dataset.n_frames} "
                f"frames are available for training ({n_test} test, {len(split['validation'])} validation, "
                f"groups kept whole); use budgets <= {n_train} or label more configurations")
    return None


@calcfunction
def nested_budget_indices(training: LabelledDatasetData, budgets: orm.List, parameters: orm.Dict) -> dict:
    """Nested frame indices of ``training`` for every label budget > 0 (budget 5 within 10 within 20).

    ``parameters``: ``seed`` (int) and ``group_by`` (as for ``reactmlip.split_dataset``): a small budget
    spreads over as many configuration groups as possible. Outputs ``budget_<N>`` (List of frame indices).
    """
    from aiida_reactmlip.splits import group_keys, nested_budgets

    params = parameters.get_dict()
    groups = group_keys(training.frame_info, params.get("group_by", "auto"))
    positive = [b for b in _budgets(budgets) if b > 0]
    subsets = nested_budgets(range(training.n_frames), groups, positive, seed=int(params.get("seed", 0)))
    return {f"budget_{b}": orm.List(list(subsets[b])) for b in positive}


@calcfunction
def scan_metrics(dataset: LabelledDatasetData, predictions: orm.ArrayData) -> orm.Dict:
    """Bond-scan stretch (dissociation) energies of ``dataset`` by DFT and by the model, and their errors (eV).

    See :func:`aiida_reactmlip.metrics.learning_curves.scan_energy_errors`; ``scan_energy_mae`` only when
    the dataset holds a bond scan (frames with role ``scan`` and a ``scan_coordinate``).
    """
    from aiida_reactmlip.metrics.learning_curves import scan_energy_errors

    result = scan_energy_errors(dataset.frame_info, dataset.get_array("energies"), predictions.get_array("energies"))
    result["dataset_uuid"] = dataset.uuid
    return orm.Dict(result)


@calcfunction
def make_learning_curve(layout: orm.Dict, **metrics: orm.Dict) -> orm.Dict:
    """Learning curves, relative gains and forgetting of every base model (see ``metrics.learning_curves``).

    ``layout``: for each keyword of ``metrics``, ``{"model": key, "budget": N, "set": "test"|"general",
    "part": "metrics"|"scan", "family", "model_name", "model_uuid"}``; the parts of one set are merged.
    Each row of the result keeps the UUIDs of its model and metrics nodes (``<set>_<part>_uuid``).
    """
    from aiida_reactmlip.metrics.learning_curves import learning_curves

    points: dict[tuple[str, int], dict] = {}
    for label, where in sorted(layout.get_dict().items()):
        point = points.setdefault((where["model"], int(where["budget"])), {
            "model": where["model"], "budget": int(where["budget"]), "family": where.get("family"),
            "model_name": where.get("model_name"), "model_uuid": where.get("model_uuid"),
        })
        point.setdefault(where["set"], {}).update(metrics[label].get_dict())
        point[f"{where['set']}_{where.get('part', 'metrics')}_uuid"] = metrics[label].uuid
    result = learning_curves(points.values())
    energy_reference = next((p["test"].get("energy_reference") for p in points.values() if "test" in p), None)
    result["energy_reference"] = energy_reference
    return orm.Dict(result)


class FinetuneStudyWorkChain(WorkChain):
    """Fine-tune base models on nested label budgets; held-out, reactive and general-set errors per budget."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("base_models", valid_type=MlipModelData, dynamic=True,
                             help="Universal models to fine-tune, by key (e.g. chgnet, sevennet, mace).")
        spec.input("dataset", valid_type=LabelledDatasetData, help="The DFT-labelled pool of the target system.")
        spec.input("budgets", valid_type=orm.List,
                   help="Label budgets: numbers of DFT-labelled frames to fine-tune on; 0 = the zero-shot model.")
        spec.input("split_parameters", valid_type=orm.Dict, default=lambda: orm.Dict(dict(SPLIT_DEFAULTS)),
                   help="reactmlip.split_dataset parameters: test_fraction, validation_fraction, seed, group_by.")
        spec.input("seed", valid_type=orm.Int, default=lambda: orm.Int(0),
                   help="Seed of the budget subsets and, unless the hyperparameters set one, of every fine-tune.")
        spec.input_namespace("hyperparameters", valid_type=orm.Dict, dynamic=True, required=False,
                             help="Fine-tuning hyperparameters by family (chgnet, sevenn, mace) or by base model "
                             "key (overrides the family's).")
        spec.input("general_set", valid_type=LabelledDatasetData, required=False,
                   help="A general reference set (bulk, gas molecules, clean surfaces) to measure forgetting.")
        spec.input("runner_code", valid_type=orm.AbstractCode, help="Code of reactmlip-runner.")
        spec.input("evaluate_settings", valid_type=orm.Dict, required=False, help="Settings for reactmlip.evaluate.")
        spec.input("finetune_options", valid_type=orm.Dict, required=False,
                   help="metadata.options of every reactmlip.finetune job (resources, max_wallclock_seconds, ...).")
        spec.input("metrics_settings", valid_type=orm.Dict,
                   default=lambda: orm.Dict({"energy_reference": "relative:min"}),
                   help="compute_metrics settings on the test split (energy_reference).")
        spec.input("general_metrics_settings", valid_type=orm.Dict, required=False,
                   help="compute_metrics settings on the general set (default: metrics_settings).")
        spec.input("max_concurrent_jobs", valid_type=orm.Int, default=lambda: orm.Int(0),
                   help="Jobs running at once (0: all at once). On a small machine, the number of cores.")
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.split,
            cls.select_budgets,
            cls.queue_finetunes,
            while_(cls.has_queued)(cls.submit_batch),
            cls.inspect_finetunes,
            cls.queue_finetuned_evaluations,
            while_(cls.has_queued)(cls.submit_batch),
            cls.inspect_evaluations,
            cls.compute_results,
        )
        spec.output("split", valid_type=orm.Dict, help="Frame indices and groups of train/validation/test.")
        spec.output("test_set", valid_type=LabelledDatasetData, help="The held-out test split.")
        spec.output_namespace("training_sets", valid_type=LabelledDatasetData, dynamic=True,
                              help="budget_<N>: the N training frames.")
        spec.output_namespace("models", valid_type=MlipModelData, dynamic=True,
                              help="<key>.budget_<N>: the model fine-tuned on N labels.")
        spec.output_namespace("metrics", valid_type=orm.Dict, dynamic=True,
                              help="<key>.budget_<N>: test-split metrics (budget_0: zero-shot).")
        spec.output_namespace("general_metrics", valid_type=orm.Dict, dynamic=True,
                              help="<key>.budget_<N>: general-set metrics (forgetting).")
        spec.output_namespace("scan_metrics", valid_type=orm.Dict, dynamic=True,
                              help="<key>.budget_<N>: bond-scan stretch-energy errors on the test split (eV).")
        spec.output("learning_curve", valid_type=orm.Dict, help="Learning curves, gains and forgetting per model.")
        spec.exit_code(420, "ERROR_FINETUNE_FAILED", message="Fine-tuning failed: {details}")
        spec.exit_code(430, "ERROR_EVALUATION_FAILED", message="Evaluation failed: {details}")
        spec.exit_code(440, "ERROR_METRICS_FAILED", message="Metrics could not be computed: {details}")

    # ------------------------------------------------------------------ helpers
    def _positive_budgets(self) -> list[int]:
        return sorted(b for b in _budgets(self.inputs.budgets) if b > 0)

    def _sets(self) -> list[str]:
        return ["test", "general"] if "general_set" in self.inputs else ["test"]

    @staticmethod
    def _name(kind: str, key: str, budget: int, subset: str = "") -> str:
        return f"{kind}_{subset + '_' if subset else ''}{key}_b{budget}"

    def _model(self, key: str, budget: int) -> MlipModelData:
        if budget == 0:
            return self.inputs.base_models[key]
        return self.ctx[self._name(FINETUNE, key, budget)].outputs.model

    # ------------------------------------------------------------------ steps
    def split(self):
        """Split the pool by configuration group (seeded, stored)."""
        outputs = split_dataset(self.inputs.dataset, self.inputs.split_parameters)
        self.ctx.train, self.ctx.validation, self.ctx.test = outputs["train"], outputs["validation"], outputs["test"]
        self.ctx.split = outputs["split"]
        self.out("split", outputs["split"])
        self.out("test_set", outputs["test"])
        self.report(f"split dataset<{self.inputs.dataset.pk}>: {self.ctx.train.n_frames} train, "
                    f"{self.ctx.validation.n_frames} validation, {self.ctx.test.n_frames} test frames")

    def select_budgets(self):
        """Nested budget subsets of the train split, each a dataset node."""
        self.ctx.training_sets = {}
        budgets = self._positive_budgets()
        if not budgets:
            return
        parameters = orm.Dict({"seed": int(self.inputs.seed.value),
                               "group_by": self.ctx.split["parameters"].get("group_by", "auto")})
        indices = nested_budget_indices(self.ctx.train, self.inputs.budgets, parameters)
        for budget in budgets:
            subset = select_frames(self.ctx.train, indices[f"budget_{budget}"])
            self.ctx.training_sets[budget] = subset
            self.out(f"training_sets.budget_{budget}", subset)

    def queue_finetunes(self):
        """Queue every (model, budget > 0) fine-tune and the zero-shot evaluations (budget 0)."""
        self.ctx.queue = []
        for key in sorted(self.inputs.base_models):
            for subset in self._sets():
                self.ctx.queue.append([EVALUATE, key, 0, subset])
            for budget in self._positive_budgets():
                self.ctx.queue.append([FINETUNE, key, budget, ""])

    def queue_finetuned_evaluations(self):
        """Queue the evaluation of every fine-tuned model on the test split and the general set."""
        self.ctx.queue = [[EVALUATE, key, budget, subset] for key in sorted(self.inputs.base_models)
                          for budget in self._positive_budgets() for subset in self._sets()]

    def has_queued(self):
        return bool(self.ctx.queue)

    def submit_batch(self):
        """Submit the next jobs of the queue (all, or ``max_concurrent_jobs``); the next step waits for them."""
        limit = int(self.inputs.max_concurrent_jobs.value) or len(self.ctx.queue)
        batch, self.ctx.queue = self.ctx.queue[:limit], self.ctx.queue[limit:]
        for kind, key, budget, subset in batch:
            name = self._name(kind, key, budget, subset)
            if kind == FINETUNE:
                node = self.submit(FinetuneCalculation, **self._finetune_inputs(key, budget))
                self.report(f"fine-tuning {key} on {budget} labels: {node.process_label}<{node.pk}>")
            else:
                node = self.submit(EvaluateCalculation, **self._evaluate_inputs(key, budget, subset))
            self.to_context(**{name: node})

    def _finetune_inputs(self, key: str, budget: int) -> dict:
        from aiida_reactmlip.models.loading import normalize_family

        base = self.inputs.base_models[key]
        params = resolve_hyperparameters(key, normalize_family(base.family), dict(self.inputs.get("hyperparameters", {})),
                                         self.inputs.seed.value)
        inputs = {
            "code": self.inputs.runner_code,
            "base_model": base,
            "training": self.ctx.training_sets[budget],
            "parameters": orm.Dict(params),
            "metadata": {"call_link_label": self._name(FINETUNE, key, budget),
                         "label": f"{base.model_name} fine-tuned on {budget} labels"},
        }
        if self.ctx.validation.n_frames:
            inputs["validation"] = self.ctx.validation
        if "finetune_options" in self.inputs:
            inputs["metadata"]["options"] = self.inputs.finetune_options.get_dict()
        return inputs

    def _evaluate_inputs(self, key: str, budget: int, subset: str) -> dict:
        inputs = {
            "code": self.inputs.runner_code,
            "model": self._model(key, budget),
            "dataset": self.ctx.test if subset == "test" else self.inputs.general_set,
            "metadata": {"call_link_label": self._name(EVALUATE, key, budget, subset)},
        }
        if "evaluate_settings" in self.inputs:
            inputs["settings"] = self.inputs.evaluate_settings
        return inputs

    def _failures(self, names: list[str]) -> str:
        """One line per failed child: its name, process, exit status and message (or why it excepted)."""
        lines = []
        for name in names:
            node = self.ctx[name]
            if node.is_finished_ok:
                continue
            if node.is_excepted or node.exit_status is None:
                exception = (node.exception or f"state {node.process_state.value}").strip().splitlines()
                why = f"excepted: {exception[-1] if exception else ''}"
            else:
                why = f"[{node.exit_status}] {node.exit_message}"
            lines.append(f"{name} ({node.process_label}<{node.pk}> {why})")
        return "; ".join(lines)

    def inspect_finetunes(self):
        names = [self._name(FINETUNE, key, budget) for key in sorted(self.inputs.base_models)
                 for budget in self._positive_budgets()]
        details = self._failures(names)
        if details:
            return self.exit_codes.ERROR_FINETUNE_FAILED.format(details=details)
        for key in sorted(self.inputs.base_models):
            for budget in self._positive_budgets():
                self.out(f"models.{key}.budget_{budget}", self._model(key, budget))
        return None

    def _evaluation_names(self) -> list[tuple[str, int, str, str]]:
        budgets = [0, *self._positive_budgets()]
        return [(key, budget, subset, self._name(EVALUATE, key, budget, subset))
                for key in sorted(self.inputs.base_models) for budget in budgets for subset in self._sets()]

    def inspect_evaluations(self):
        details = self._failures([name for *_, name in self._evaluation_names()])
        if details:
            return self.exit_codes.ERROR_EVALUATION_FAILED.format(details=details)
        return None

    def compute_results(self):
        """Metrics of every (model, budget) on the test split and the general set, then the learning curves."""
        general_settings = self.inputs.get("general_metrics_settings", self.inputs.metrics_settings)
        layout, metrics_nodes = {}, {}
        for key, budget, subset, name in self._evaluation_names():
            model = self._model(key, budget)
            dataset = self.ctx.test if subset == "test" else self.inputs.general_set
            settings = self.inputs.metrics_settings if subset == "test" else general_settings
            try:
                metrics = compute_metrics(dataset, self.ctx[name].outputs.predictions, settings, model,
                                          metadata={"call_link_label": f"metrics_{subset}_{key}_b{budget}"})
            except ValueError as exception:
                return self.exit_codes.ERROR_METRICS_FAILED.format(
                    details=f"{key} budget {budget} on the {subset} set: {exception}")
            self.out(f"{'metrics' if subset == 'test' else 'general_metrics'}.{key}.budget_{budget}", metrics)
            where = {"model": key, "budget": budget, "set": subset, "family": model.family,
                     "model_name": self.inputs.base_models[key].model_name, "model_uuid": model.uuid}
            metrics_nodes[f"{subset}_{key}_b{budget}"] = metrics
            layout[f"{subset}_{key}_b{budget}"] = {**where, "part": "metrics"}
            if subset == "test":
                scans = scan_metrics(dataset, self.ctx[name].outputs.predictions,
                                     metadata={"call_link_label": f"scan_metrics_{key}_b{budget}"})
                self.out(f"scan_metrics.{key}.budget_{budget}", scans)
                metrics_nodes[f"scan_{key}_b{budget}"] = scans
                layout[f"scan_{key}_b{budget}"] = {**where, "part": "scan"}
        curve = make_learning_curve(orm.Dict(layout), **metrics_nodes)
        self.out("learning_curve", curve)
        self._report_curve(curve.get_dict())
        return None

    def _report_curve(self, curve: dict) -> None:
        for key, entry in curve["models"].items():
            force = entry["test"].get("force_mae", [])
            text = ", ".join(f"{b}: {1000 * f:.0f}" if f is not None else f"{b}: -"
                             for b, f in zip(entry["budgets"], force))
            self.report(f"{key}: test force MAE (meV/Å) by budget {text}")


# ------------------------------------------------------------------------------- study files (YAML)

STUDY_KEYS = {"name", "description", "dataset", "general_set", "models", "budgets", "split", "seed",
              "hyperparameters", "energy_reference", "general_energy_reference", "max_concurrent_jobs",
              "finetune_options", "evaluate_settings"}


@dataclasses.dataclass
class StudySpec:
    """A fine-tuning study read from ``workchains/finetune-*.yaml`` (see :func:`load_study`)."""

    name: str
    dataset: Any
    models: list
    budgets: list[int]
    description: str = ""
    general_set: Any = None
    split: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    hyperparameters: dict = dataclasses.field(default_factory=dict)
    energy_reference: str = "relative:min"
    general_energy_reference: str | None = None
    max_concurrent_jobs: int = 0
    finetune_options: dict = dataclasses.field(default_factory=dict)
    evaluate_settings: dict = dataclasses.field(default_factory=dict)
    path: pathlib.Path | None = None

    def model_keys(self) -> list[str]:
        """The key of each model in ``base_models`` (a link label made from its name)."""
        from aiida_reactmlip.workflows.benchmark import link_label

        return [link_label(model if isinstance(model, str) else str(model.get("name") or model.get("pk")))
                for model in self.models]


def load_study(path: str | pathlib.Path) -> StudySpec:
    """Read and check a study file; errors name the file and the offending key or value.

    A study file::

        name: finetune-ch4-dissociation
        description: CHGNet, SevenNet and MACE fine-tuned on 0-20 pw.x labels of the reactive pool.
        dataset: reactive-pool          # a fixture dataset name, a dataset pk/UUID, or an .extxyz path
        general_set: general-reference-set   # optional, same forms: forgetting is measured on it
        models:                         # registry names, stored pks, or model files
          - chgnet-0.3.0
          - {file: fixtures/models/mace-fixture.model, family: mace, name: mace-fixture}
        budgets: [0, 5, 10, 20]         # numbers of DFT labels (0 = zero-shot)
        split: {test_fraction: 0.25, validation_fraction: 0.15, seed: 0}
        seed: 0                         # budget subsets and fine-tunes
        hyperparameters: {chgnet: {epochs: 30, learning_rate: 3.0e-4}}   # by family or model key
        energy_reference: relative:min
        max_concurrent_jobs: 2          # jobs at once; 0: all
    """
    from aiida_reactmlip.calculations.split import split_parameters
    from aiida_reactmlip.workflows.spec_files import read_spec_file

    path = pathlib.Path(path)
    data = read_spec_file(path, "study", STUDY_KEYS)
    for key in ("name", "dataset", "models", "budgets"):
        if data.get(key) in (None, "", []):
            raise ValueError(f"{path}: '{key}' is required")
    if not isinstance(data["models"], list):
        raise ValueError(f"{path}: 'models' must be a list of registry names, pks or {{file, family, name}}")  # noqa: TRY004
    for model in data["models"]:
        if isinstance(model, dict):
            if "pk" not in model and not {"file", "family", "name"} <= set(model):
                raise ValueError(f"{path}: a model given as a mapping needs 'pk', or 'file', 'family' and 'name': "
                                 f"got {model}")
        elif not isinstance(model, (str, int)):
            raise ValueError(f"{path}: a model must be a registry name, a pk or a mapping, got {model!r}")  # noqa: TRY004
        elif isinstance(model, str):
            from aiida_reactmlip.models import get_model_spec

            get_model_spec(model)  # raises UnknownModelError listing the available names
    message = _check_budgets(data["budgets"]) if isinstance(data["budgets"], list) else "budgets must be a list"
    if message:
        raise ValueError(f"{path}: {message}")
    try:
        split = split_parameters(dict(data.get("split") or {}))
    except ValueError as exception:
        raise ValueError(f"{path}: split: {exception}") from exception
    hyperparameters = data.get("hyperparameters") or {}
    if not isinstance(hyperparameters, dict) or not all(isinstance(v, dict) for v in hyperparameters.values()):
        raise ValueError(f"{path}: 'hyperparameters' must map a family or model key to a mapping of values")
    return StudySpec(
        name=str(data["name"]), dataset=data["dataset"], models=list(data["models"]), budgets=list(data["budgets"]),
        description=str(data.get("description", "")), general_set=data.get("general_set"), split=split,
        seed=int(data.get("seed", 0)), hyperparameters=hyperparameters,
        energy_reference=str(data.get("energy_reference", "relative:min")),
        general_energy_reference=data.get("general_energy_reference"),
        max_concurrent_jobs=int(data.get("max_concurrent_jobs", 0)),
        finetune_options=dict(data.get("finetune_options") or {}),
        evaluate_settings=dict(data.get("evaluate_settings") or {}), path=path,
    )


def resolve_dataset(entry, base: pathlib.Path | None = None) -> LabelledDatasetData:
    """A stored ``LabelledDatasetData`` from a study's dataset entry: a pk, a UUID, an ``.extxyz`` path
    (relative to the study file, then to the working directory), a fixture dataset name, or a mapping
    ``{pk: N}``, ``{uuid: ...}``, ``{extxyz: PATH}``, ``{fixture: NAME}``."""
    if isinstance(entry, dict):
        if len(entry) != 1 or next(iter(entry)) not in ("pk", "uuid", "extxyz", "fixture"):
            raise ValueError(f"a dataset mapping needs exactly one of pk, uuid, extxyz, fixture: got {entry}")
        kind, value = next(iter(entry.items()))
    elif isinstance(entry, int) or (isinstance(entry, str) and entry.isdigit()):
        kind, value = "pk", int(entry)
    elif isinstance(entry, str) and entry.endswith((".extxyz", ".xyz")):
        kind, value = "extxyz", entry
    elif isinstance(entry, str) and len(entry) == 36 and entry.count("-") == 4:
        kind, value = "uuid", entry
    else:
        kind, value = "fixture", entry
    if kind in ("pk", "uuid"):
        node = orm.load_node(value)
        if not isinstance(node, LabelledDatasetData):
            raise ValueError(f"node {value} is a {type(node).__name__}, not a LabelledDatasetData")
        return node
    if kind == "extxyz":
        candidates = [pathlib.Path(value)] if base is None else [base / value, pathlib.Path(value)]
        for candidate in candidates:
            if candidate.is_file():
                return LabelledDatasetData.from_extxyz(candidate).store()
        raise ValueError(f"dataset file {value} not found (looked at {', '.join(map(str, candidates))})")
    from aiida_reactmlip.datasets import fixture_path

    return stored_fixture_dataset(fixture_path(str(value)))


def stored_fixture_dataset(path: pathlib.Path) -> LabelledDatasetData:
    """The ``LabelledDatasetData`` of a fixture extxyz file, stored once: found again by the file's sha256
    (extra ``fixture_sha256``), so that every study on a fixture uses the same dataset node."""
    from aiida_reactmlip.data.model import sha256_of

    digest = sha256_of(path)
    query = orm.QueryBuilder().append(LabelledDatasetData, filters={"extras.fixture_sha256": digest}, tag="d")
    existing = query.order_by({"d": "id"}).first(flat=True)
    if existing is not None:
        return existing
    node = LabelledDatasetData.from_extxyz(path)
    node.label = path.stem
    node.description = f"fixture dataset {path.name}"
    node.store()
    node.base.extras.set_many({"fixture_sha256": digest, "fixture": path.stem})
    return node


def resolve_model(entry, base: pathlib.Path | None = None) -> MlipModelData:
    """A stored ``MlipModelData`` from a study's model entry: a registry name, a pk, ``{pk: N}`` or
    ``{file: PATH, family: F, name: NAME}`` (elements and cutoff read from the file; deduplicated by sha256)."""
    from aiida_reactmlip import provision

    if isinstance(entry, str) and not entry.isdigit():
        return provision.ensure_registry_models([entry])[entry]
    if isinstance(entry, (int, str)) or "pk" in entry:
        node = orm.load_node(int(entry if not isinstance(entry, dict) else entry["pk"]))
        if not isinstance(node, MlipModelData):
            raise ValueError(f"node {entry} is a {type(node).__name__}, not an MlipModelData")
        return node
    from aiida_reactmlip.models import describe_model_file

    candidates = [pathlib.Path(entry["file"])] if base is None else [base / entry["file"], pathlib.Path(entry["file"])]
    file = next((c for c in candidates if c.is_file()), None)
    if file is None:
        raise ValueError(f"model file {entry['file']} not found (looked at {', '.join(map(str, candidates))})")
    description = describe_model_file(entry["family"], file)
    node, _ = MlipModelData.get_or_create(
        file=str(file), family=entry["family"], model_name=entry["name"], version=entry.get("version"),
        elements=description["elements"], cutoff=description.get("cutoff"), dtype=description.get("dtype"),
        source=str(file.resolve()),
    )
    return node


def study_builder(spec: StudySpec):
    """The FinetuneStudyWorkChain builder of a study (datasets and models stored, codes set up)."""
    from aiida_reactmlip import provision
    from aiida_reactmlip.workflows.benchmark import link_label

    base = spec.path.parent.resolve().parent if spec.path is not None else None  # repository root of workchains/
    computer = provision.ensure_localhost()
    codes = provision.ensure_codes(computer)
    builder = FinetuneStudyWorkChain.get_builder()
    builder.dataset = resolve_dataset(spec.dataset, base)
    if spec.general_set is not None:
        builder.general_set = resolve_dataset(spec.general_set, base)
    models = {}
    for key, entry in zip(spec.model_keys(), spec.models):
        models[key] = resolve_model(entry, base)
    builder.base_models = models
    builder.budgets = orm.List([int(b) for b in spec.budgets])
    builder.split_parameters = orm.Dict(spec.split)
    builder.seed = orm.Int(spec.seed)
    if spec.hyperparameters:
        # keys: a family (chgnet, sevenn, mace) or a model (its key or its name); the validator names bad ones
        builder.hyperparameters = {k if k in models or link_label(k) not in models else link_label(k): orm.Dict(v)
                                   for k, v in spec.hyperparameters.items()}
    builder.runner_code = codes["runner"]
    builder.metrics_settings = orm.Dict({"energy_reference": spec.energy_reference})
    if spec.general_energy_reference:
        builder.general_metrics_settings = orm.Dict({"energy_reference": spec.general_energy_reference})
    builder.max_concurrent_jobs = orm.Int(spec.max_concurrent_jobs)
    if spec.finetune_options:
        builder.finetune_options = orm.Dict(spec.finetune_options)
    if spec.evaluate_settings:
        builder.evaluate_settings = orm.Dict(spec.evaluate_settings)
    builder.metadata.label = f"finetune study {spec.name}"
    builder.metadata.description = spec.description
    return builder


def run_study(spec: StudySpec):
    """Run the study in-process (``aiida.engine.run_get_node``); return the FinetuneStudyWorkChain node."""
    from aiida.engine import run_get_node

    _, node = run_get_node(study_builder(spec))
    return node
