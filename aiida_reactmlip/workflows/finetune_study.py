"""``reactmlip.finetune_study``: base models x label budgets -> fine-tuned models -> held-out metrics -> learning curves.

The question it answers: how many DFT labels of *my* system does a universal model need before it is
reliable for it, and what does it forget on the way?

1. The labelled pool is split by configuration group (``reactmlip.split_dataset``: the images of one path,
   the frames of one scan stay together) into train / validation / test.
2. Nested label budgets are drawn from the train split (``nested_budget_indices``, seeded: budget 5
   within 10 within 20) and selected as datasets (``reactmlip.select_frames``).
3. Every base model is fine-tuned on every budget > 0 (``reactmlip.finetune`` in ``reactmlip.finetune_base``,
   which retries a diverged training with half the learning rate; all in parallel or in waves of
   ``max_concurrent_jobs``), validated on the validation split.
4. Every model (budget 0 = the zero-shot base model, and each fine-tuned one) is evaluated on the test split
   (``reactmlip.evaluate``) or, when a general reference set is given (``general_set``: bulk metals, gas
   molecules, clean surfaces; to measure forgetting), on both in one ``reactmlip.evaluate_many`` job.
5. ``reactmlip.compute_metrics`` gives the errors (reactive metrics included), ``scan_metrics`` the error of
   each bond scan's stretch (dissociation) energy, and
   ``make_learning_curve`` the learning curve of each model (:mod:`aiida_reactmlip.metrics.learning_curves`).

Every split, subset, model, prediction and metric is a node linked to what made it.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import WorkChain, calcfunction, while_

from aiida_reactmlip.calculations.evaluate import EvaluateCalculation, EvaluateManyCalculation
from aiida_reactmlip.calculations.functions import compute_metrics
from aiida_reactmlip.calculations.split import SPLIT_DEFAULTS, compute_split, select_frames, split_dataset
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.workflows.restart import FinetuneBaseWorkChain, failure_reason

#: job kinds of the study's queue
FINETUNE, EVALUATE = "finetune", "evaluate"
#: Optional settings (Dict inputs): name -> help.
OPTIONAL_SETTINGS = {
    "evaluate_settings": "Settings for reactmlip.evaluate.",
    "finetune_options": "metadata.options of every reactmlip.finetune job (resources, max_wallclock_seconds, ...).",
    "general_metrics_settings": "compute_metrics settings on the general set (default: metrics_settings).",
}
#: Output namespaces with one node per base model key and budget: (name, node type, what the node is).
PER_BUDGET_OUTPUTS = (
    ("models", MlipModelData, "the model fine-tuned on N labels"),
    ("metrics", orm.Dict, "test-split metrics (budget_0: zero-shot)"),
    ("general_metrics", orm.Dict, "general-set metrics (forgetting)"),
    ("scan_metrics", orm.Dict, "bond-scan stretch-energy errors on the test split (eV)"),
)


def _budgets(node: orm.List) -> list[int]:
    return [int(b) for b in node.get_list()]


def check_budgets(values) -> str | None:
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
    from aiida_reactmlip.training import FINETUNE_FAMILIES, check_hyperparameters

    models = dict(inputs.get("base_models", {}))
    if not models:
        return "no base models given: pass at least one MlipModelData in the `base_models` namespace"
    budgets_node = inputs.get("budgets")
    values = budgets_node.get_list() if budgets_node is not None else []
    message = check_budgets(values)
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
            try:
                check_hyperparameters(family, resolve_hyperparameters(key, family, hyperparameters, 0))
            except (ValueError, ImportError) as exception:
                return f"base model {model.model_name} ({key}): {exception}"
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
        spec.input("metrics_settings", valid_type=orm.Dict,
                   default=lambda: orm.Dict({"energy_reference": "relative:min"}),
                   help="compute_metrics settings on the test split (energy_reference).")
        for name, help_text in OPTIONAL_SETTINGS.items():
            spec.input(name, valid_type=orm.Dict, required=False, help=help_text)
        spec.input("max_concurrent_jobs", valid_type=orm.Int, default=lambda: orm.Int(0),
                   help="Jobs running at once (0: all at once). On a small machine, the number of cores.")
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
        for name, valid_type, what in PER_BUDGET_OUTPUTS:
            spec.output_namespace(name, valid_type=valid_type, dynamic=True, help=f"<key>.budget_<N>: {what}.")
        spec.output("learning_curve", valid_type=orm.Dict, help="Learning curves, gains and forgetting per model.")
        spec.exit_code(420, "ERROR_FINETUNE_FAILED", message="Fine-tuning failed: {details}")
        spec.exit_code(430, "ERROR_EVALUATION_FAILED", message="Evaluation failed: {details}")
        spec.exit_code(440, "ERROR_METRICS_FAILED", message="Metrics could not be computed: {details}")
        spec.inputs.validator = validate_inputs

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
            self.ctx.queue.append([EVALUATE, key, 0])
            for budget in self._positive_budgets():
                self.ctx.queue.append([FINETUNE, key, budget])

    def queue_finetuned_evaluations(self):
        """Queue the evaluation of every fine-tuned model on the test split and the general set."""
        self.ctx.queue = [[EVALUATE, key, budget] for key in sorted(self.inputs.base_models)
                          for budget in self._positive_budgets()]

    def has_queued(self):
        return bool(self.ctx.queue)

    def submit_batch(self):
        """Submit the next jobs of the queue (all, or ``max_concurrent_jobs``); the next step waits for them."""
        limit = int(self.inputs.max_concurrent_jobs.value) or len(self.ctx.queue)
        batch, self.ctx.queue = self.ctx.queue[:limit], self.ctx.queue[limit:]
        for kind, key, budget in batch:
            if kind == FINETUNE:
                name = self._name(kind, key, budget)
                node = self.submit(FinetuneBaseWorkChain, **self._finetune_inputs(key, budget))
                self.report(f"fine-tuning {key} on {budget} labels: {node.process_label}<{node.pk}>")
            else:
                name = self._evaluation_job(key, budget)
                node = self._submit_evaluation(key, budget, name)
            self.to_context(**{name: node})

    def _finetune_inputs(self, key: str, budget: int) -> dict:
        """Inputs of the ``reactmlip.finetune_base`` WorkChain (retries a diverged or killed fine-tune)."""
        from aiida_reactmlip.models.loading import normalize_family

        base = self.inputs.base_models[key]
        params = resolve_hyperparameters(key, normalize_family(base.family), dict(self.inputs.get("hyperparameters", {})),
                                         self.inputs.seed.value)
        label = f"{base.model_name} fine-tuned on {budget} labels"
        inputs = {
            "code": self.inputs.runner_code,
            "base_model": base,
            "training": self.ctx.training_sets[budget],
            "parameters": orm.Dict(params),
            "metadata": {"label": label},
        }
        if self.ctx.validation.n_frames:
            inputs["validation"] = self.ctx.validation
        if "finetune_options" in self.inputs:
            inputs["metadata"]["options"] = self.inputs.finetune_options.get_dict()
        return {"finetune": inputs, "metadata": {"call_link_label": self._name(FINETUNE, key, budget), "label": label}}

    def _evaluation_job(self, key: str, budget: int) -> str:
        """The context name (and call link label) of the job that evaluates model ``key`` at ``budget``."""
        return self._name(EVALUATE, key, budget, "test" if self._sets() == ["test"] else "")

    def _submit_evaluation(self, key: str, budget: int, name: str):
        """One job per (model, budget): ``reactmlip.evaluate`` of the test split or, with a general set,
        ``reactmlip.evaluate_many`` of both (the model loaded once, one runner start)."""
        inputs = {"code": self.inputs.runner_code, "metadata": {"call_link_label": name}}
        if "evaluate_settings" in self.inputs:
            inputs["settings"] = self.inputs.evaluate_settings
        model = self._model(key, budget)
        if self._sets() == ["test"]:
            return self.submit(EvaluateCalculation, model=model, dataset=self.ctx.test, **inputs)
        return self.submit(EvaluateManyCalculation, models={EvaluateManyCalculation.ONE_MODEL_KEY: model},
                           datasets={"test": self.ctx.test, "general": self.inputs.general_set}, **inputs)

    def _predictions(self, key: str, budget: int, subset: str) -> orm.ArrayData:
        """Model ``key`` at ``budget`` on ``subset`` (``test`` or ``general``)."""
        node = self.ctx[self._evaluation_job(key, budget)]
        if node.process_class is EvaluateManyCalculation:
            return node.outputs.predictions[EvaluateManyCalculation.ONE_MODEL_KEY][subset]
        return node.outputs.predictions

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
                why = failure_reason(node)
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

    def _evaluations(self) -> list[tuple[str, int, str]]:
        budgets = [0, *self._positive_budgets()]
        return [(key, budget, subset) for key in sorted(self.inputs.base_models) for budget in budgets
                for subset in self._sets()]

    def inspect_evaluations(self):
        names = sorted({self._evaluation_job(key, budget) for key, budget, _ in self._evaluations()})
        details = self._failures(names)
        if details:
            return self.exit_codes.ERROR_EVALUATION_FAILED.format(details=details)
        return None

    def compute_results(self):
        """Metrics of every (model, budget) on the test split and the general set, then the learning curves."""
        general_settings = self.inputs.get("general_metrics_settings", self.inputs.metrics_settings)
        layout, metrics_nodes = {}, {}
        for key, budget, subset in self._evaluations():
            model, predictions = self._model(key, budget), self._predictions(key, budget, subset)
            dataset = self.ctx.test if subset == "test" else self.inputs.general_set
            settings = self.inputs.metrics_settings if subset == "test" else general_settings
            try:
                metrics = compute_metrics(dataset, predictions, settings, model,
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
                scans = scan_metrics(dataset, predictions,
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
