"""``reactmlip.active_learning``: the closed loop explore -> select -> DFT label -> fine-tune -> evaluate.

One round::

    explore   reactmlip.md (+ rattles, + an MLIP NEB band) with the current model -> candidate pool;
              in oracle mode the pool is a fixed, already DFT-labelled dataset (``label_pool``)
    committee the current model + (committee_size - 1) fine-tunes of the base model with other seeds
              (or on bootstrap resamples) of the labels so far, all evaluated on the pool in one
              reactmlip.evaluate_many job (each model loaded once)
    select    aiida_reactmlip.selection (random | committee | fps | committee+fps): k pool frames
    label     LabelWorkChain (pw.x) on the selected frames; oracle mode: select_frames from the pool
    merge     merge_datasets: all labels so far
    fine-tune reactmlip.finetune of the base model on all labels (in reactmlip.finetune_base: a diverged
              training is retried with half the learning rate, a killed job once)
    evaluate  reactmlip.evaluate_many (validation and test set in one job) + reactmlip.compute_metrics on
              the fixed DFT validation set
    stop?     target force / energy MAE reached, DFT budget spent, max_rounds, pool exhausted

Barrier loop (``target_barrier_error``): pw.x also labels the band's saddle (and initial state) each round; it
stops when those DFT points and the model's barrier agree (:mod:`aiida_reactmlip.workflows.active_learning_barrier`).

Round 0 is the starting point: the base model (or, with ``initial_dataset``, the base model fine-tuned
on it) evaluated on the validation set, so every curve starts at the zero-shot error.

Every node of round i is called with a link label ``round_<ii>__<step>`` and its results are outputs
``rounds.round_<ii>.{pool,selected,labels,model,metrics}``; the whole error curve is the ``summary``
output (made by a calcfunction from the metrics nodes) and, while the loop runs, the extra
``loop_progress`` of the WorkChain node. AiiDA checkpoints the WorkChain between steps; with caching
enabled (``aiida.calculations:quantumespresso.pw``, ``reactmlip.finetune``, ``reactmlip.evaluate_many``,
``reactmlip.md``), running a crashed loop again with the same inputs reuses every finished DFT label,
fine-tune and evaluation: everything is seeded, so the same inputs give the same selections.
"""

from __future__ import annotations

import time

from aiida import orm
from aiida.engine import ToContext, WorkChain, if_, while_
from aiida.plugins import CalculationFactory

from aiida_reactmlip.calculations.evaluate import EvaluateManyCalculation
from aiida_reactmlip.calculations.functions import compute_metrics
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.metrics.learning_curves import reactive_values
from aiida_reactmlip.metrics.loop import stop_reason
from aiida_reactmlip.workflows.active_learning_barrier import BARRIER_CHECK_KEYS, BarrierCheckSteps
from aiida_reactmlip.workflows.active_learning_functions import (
    bootstrap_indices,
    make_summary,
    pool_structures,
    rattle_dataset,
    round_key,
    select_candidates,
    structures_to_dataset,
)
from aiida_reactmlip.workflows.active_learning_inputs import COMMITTEE_STRATEGIES, validate_inputs
from aiida_reactmlip.workflows.label import LabelWorkChain
from aiida_reactmlip.workflows.restart import FinetuneBaseWorkChain, failure_reason

#: Name of the extra on the WorkChain node that holds the per-round progress rows.
PROGRESS_EXTRA = "loop_progress"
#: The round's model in its validation/test evaluation (one model, two datasets).
ONE_MODEL = EvaluateManyCalculation.ONE_MODEL_KEY
#: Exploration jobs: input name -> (their output that joins the pool, key of that part of the pool, what).
EXPLORATION_OUTPUTS = {"md": ("trajectory", "a_md", "MD"), "neb": ("band", "b_neb", "NEB")}
#: Exit codes of the loop: (status, label, message); ``round`` is the round that failed.
EXIT_CODES = (
    (410, "ERROR_EXPLORATION_FAILED", "Exploration failed in round {round}: {message}"),
    (420, "ERROR_COMMITTEE_FAILED", "A committee model failed in round {round}: {message}"),
    (430, "ERROR_NOTHING_SELECTED", "Round {round}: no candidate was selected ({message})"),
    (440, "ERROR_LABELLING_FAILED", "DFT labelling failed in round {round}: {message}"),
    (450, "ERROR_FINETUNE_FAILED", "Fine-tuning failed in round {round}: {message}"),
    (460, "ERROR_EVALUATION_FAILED", "Validation failed in round {round}: {message}"),
)
#: Optional settings (Dict inputs) of the exploration: name -> help.
EXPLORATION_SETTINGS = {
    "md": "reactmlip.md parameters for the exploration (seed + round index per round).",
    "rattle": "Rattled copies of the start frames added to the pool: {n, stdev (Å), seed}.",
    "neb": "reactmlip.neb settings: an MLIP NEB band between the two start frames joins the pool.",
}


class ActiveLearningWorkChain(BarrierCheckSteps, WorkChain):
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
        for name, help_text in EXPLORATION_SETTINGS.items():
            spec.input(name, valid_type=orm.Dict, required=False, help=help_text)
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
        spec.input("finetune_seed", valid_type=orm.Int, required=False,
                   help="Seeds the fine-tunes (committee members: derived from it); default: seed. Varied apart "
                   "from seed, it separates the spread due to the selection from that due to training.")
        spec.input("test", valid_type=LabelledDatasetData, required=False,
                   help="A test set, evaluated every round beside the validation set and reported "
                   "(summary test_force_mae); it never decides when to stop.")
        spec.input("target_force_mae", valid_type=orm.Float, required=False, help="Stop at this force MAE (eV/Å).")
        spec.input("target_energy_mae", valid_type=orm.Float, required=False,
                   help="Stop at this energy MAE (eV/atom); with both targets, both must be met.")
        spec.input("max_dft_labels", valid_type=orm.Int, required=False, help="DFT budget: labels in total.")
        spec.input("max_rounds", valid_type=orm.Int, default=lambda: orm.Int(5), help="Rounds at most.")
        BarrierCheckSteps.define_barrier_inputs(spec)
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
                # barrier loop, check_first: pw.x labels the saddle check alone; the picks only if it fails
                if_(cls.checks_first)(cls.start_check, cls.select, cls.run_labelling, cls.inspect_labelling, cls.end_check),
                if_(cls.should_continue)(
                    if_(cls.uses_committee)(
                        cls.run_committee, cls.inspect_committee, cls.run_committee_predictions, cls.inspect_predictions
                    ),
                    if_(cls.picks_left)(cls.select, cls.run_labelling, cls.inspect_labelling),
                    if_(cls.should_continue)(cls.run_finetune, cls.inspect_finetune, cls.run_validation,
                                             cls.inspect_validation),
                ),
            ),
            cls.finalize,
        )
        spec.output("model", valid_type=MlipModelData, help="The model of the last round.")
        spec.output("dataset", valid_type=LabelledDatasetData, required=False, help="All DFT labels of the loop.")
        spec.output("summary", valid_type=orm.Dict,
                    help="rounds (round, n_labels, n_new, force_mae eV/Å, energy_mae_per_atom eV/atom, selected, "
                    "strategy, seconds), stop_reason, settings.")
        spec.output_namespace("rounds", valid_type=orm.Data, dynamic=True,
                              help="round_<ii>: pool, selected, scores, labels, model, metrics, test_metrics "
                              "(with a test set).")
        for status, label, message in EXIT_CODES:
            spec.exit_code(status, label, message=message)

    # ------------------------------------------------------------------ helpers
    def _label(self, what: str) -> str:
        return f"{round_key(self.ctx.round)}__{self.ctx.get('step_prefix', '')}{what}"

    def _options(self) -> dict:
        return {"options": self.inputs.options.get_dict()} if "options" in self.inputs else {}

    def _out_round(self, name: str, node) -> None:
        name = f"{self.ctx.get('step_prefix', '')}{name}"
        self.out(f"rounds.{round_key(self.ctx.round)}.{name}", node)
        self.ctx.round_nodes.setdefault(round_key(self.ctx.round), {})[name] = node

    def _finetune_parameters(self, seed: int) -> orm.Dict:
        params = self.inputs.finetune_parameters.get_dict() if "finetune_parameters" in self.inputs else {}
        return orm.Dict({**params, "seed": int(seed)})

    def _submit_finetune(self, training, seed: int, label: str, start_model=None):
        """Submit a ``reactmlip.finetune_base`` WorkChain (retries a diverged or killed fine-tune) as ``label``."""
        inputs = {
            "code": self.inputs.runner_code,
            "base_model": start_model or self.inputs.base_model,
            "training": training,
            "parameters": self._finetune_parameters(seed),
            "model_name": orm.Str(f"{self.inputs.base_model.model_name}-al-{label}"),
            "metadata": self._options(),
        }
        return self.submit(FinetuneBaseWorkChain, finetune=inputs, metadata={"call_link_label": label})

    def _submit_evaluate(self, models: dict, datasets: dict, label: str):
        """One ``reactmlip.evaluate_many`` job: every model on every dataset, each model loaded once."""
        inputs = {"code": self.inputs.runner_code, "models": models, "datasets": datasets,
                  "metadata": {"call_link_label": label, **self._options()}}
        if "evaluate_settings" in self.inputs:
            inputs["settings"] = self.inputs.evaluate_settings
        return self.submit(EvaluateManyCalculation, **inputs)

    def _finetune_seed(self) -> int:
        """The seed of the fine-tunes: ``finetune_seed``, or ``seed`` when not given."""
        return int(self.inputs.finetune_seed.value if "finetune_seed" in self.inputs else self.inputs.seed.value)

    def _optional(self, name: str):
        """The value of the optional input ``name``, or None."""
        return self.inputs[name].value if name in self.inputs else None

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
        self.ctx.barrier, self.ctx.dft_initial = None, None  # barrier loop: the round's check, the DFT initial state
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
        node = self._submit_finetune(self.ctx.labels, self._finetune_seed(), self._label("finetune"))
        self.report(f"round 0: fine-tuning on the {self.ctx.labels.n_frames} initial labels: <{node.pk}>")
        return ToContext(finetune=node)

    # ------------------------------------------------------------------ the loop
    def should_continue(self):
        return self.ctx.stop_reason is None

    def start_round(self):
        self.ctx.round += 1
        self.ctx.round_start = time.time()
        self.ctx.committee, self.ctx.round_checked, self.ctx.picks_skipped = [], [], False  # see check_first
        self.ctx.barrier = None

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
        for name, (output, part, what) in EXPLORATION_OUTPUTS.items():
            if name not in self.inputs:
                continue
            node = self.ctx[f"explore_{name}"]
            if output not in node.outputs:
                return self.exit_codes.ERROR_EXPLORATION_FAILED.format(
                    round=self.ctx.round, message=f"{what} <{node.pk}> [{node.exit_status}] {node.exit_message}")
            parts[part] = node.outputs[output]
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
        return (self.inputs.strategy.value in COMMITTEE_STRATEGIES and self.ctx.labels is not None
                and self.inputs.k.value > 0)

    def run_committee(self):
        """Members 1..n-1: the base model fine-tuned with other seeds (or on bootstrap resamples) of the labels."""
        futures = {}
        seed = self._finetune_seed()
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
                    round=self.ctx.round, message=f"fine-tune <{node.pk}> {failure_reason(node)}")
        return None

    def run_committee_predictions(self):
        models = [self.ctx.model] + [self.ctx[f"committee_{m:02d}"].outputs.model
                                     for m in range(1, self.inputs.committee_size.value)]
        members = {f"member_{member:02d}": model for member, model in enumerate(models)}
        return ToContext(predict=self._submit_evaluate(members, {"pool": self._pool()}, self._label("predict")))

    def inspect_predictions(self):
        node = self.ctx.predict
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_COMMITTEE_FAILED.format(
                round=self.ctx.round, message=f"evaluate <{node.pk}> [{node.exit_status}] {node.exit_message}")
        self.ctx.committee = [node.outputs.predictions[f"member_{member:02d}"]["pool"]
                              for member in range(self.inputs.committee_size.value)]
        return None

    def select(self):
        pool, pool_left, max_labels = self._pool(), self._pool_left(), self._optional("max_dft_labels")
        include = self._check_include()  # barrier loop: the saddle check, labelled first
        done, k = list(self.ctx.round_checked), self._picks_this_round(include, pool_left, max_labels)
        strategy = self.inputs.strategy.value
        if strategy in COMMITTEE_STRATEGIES and not self.ctx.committee:  # no labels yet: no committee
            strategy = self.inputs.initial_strategy.value
        if k < 1 and not include:
            return self.exit_codes.ERROR_NOTHING_SELECTED.format(round=self.ctx.round, message="no budget or pool left")
        params = {"strategy": strategy, "k": k, "seed": int(self.inputs.seed.value) + self.ctx.round,
                  "already_selected": (list(self.ctx.pool_selected) if self.ctx.oracle else []) + done,
                  **({"include": include} if include else {})}
        predictions = {f"member_{i:02d}": node for i, node in enumerate(self.ctx.committee)}
        result = select_candidates(pool, orm.Dict(params), **predictions,
                                   metadata={"call_link_label": self._label("select")})
        selected = result["selected"]
        if not selected.get_list():
            return self.exit_codes.ERROR_NOTHING_SELECTED.format(round=self.ctx.round, message=f"strategy {strategy}")
        self.ctx.selected = selected
        self.ctx.strategy_used = strategy
        if include or done:  # the barrier loop: the saddle check, and the strategy's picks when k > 0
            self.ctx.strategy_used = f"saddle+{strategy}" if k > 0 else "saddle"
        self._out_round("selected", selected)
        self._out_round("scores", result["scores"])
        if not self.ctx.oracle:
            self._out_round("pool", pool)
        self.report(f"round {self.ctx.round}: {self.ctx.strategy_used} selected pool frames {selected.get_list()}")
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
            extras["pool_index"] = int(key.split("_")[-1])
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
        self.ctx.n_new = int(new.n_frames) + len(self.ctx.round_checked)
        if self._barrier_loop() and not self.ctx.round_checked:  # the saddle check of this round's band's model
            message = self._record_barrier_check(new)
            if message:
                return self.exit_codes.ERROR_LABELLING_FAILED.format(round=self.ctx.round, message=message)
        if self.ctx.labels is None:
            self.ctx.labels = new
        else:
            self.ctx.labels = merge_datasets(a_previous=self.ctx.labels, b_new=new,
                                             metadata={"call_link_label": self._label("merge")})
        self._out_round("labels", self.ctx.labels)
        if self.ctx.barrier is not None:
            self._stop_if_barrier_converged()
        return None

    def run_finetune(self):
        start = self.ctx.model if self.inputs.finetune_from.value == "previous" else None
        node = self._submit_finetune(self.ctx.labels, self._finetune_seed(), self._label("finetune"), start)
        self.report(f"round {self.ctx.round}: fine-tuning on {self.ctx.labels.n_frames} labels <{node.pk}>")
        return ToContext(finetune=node)

    def inspect_finetune(self):
        node = self.ctx.finetune
        if not node.is_finished_ok or "model" not in node.outputs:
            return self.exit_codes.ERROR_FINETUNE_FAILED.format(
                round=self.ctx.round, message=f"<{node.pk}> {failure_reason(node)}")
        self.ctx.model = node.outputs.model
        self._out_round("model", self.ctx.model)
        return None

    def run_validation(self):
        datasets = {name: self.inputs[name] for name in ("validation", "test") if name in self.inputs}
        return ToContext(validation=self._submit_evaluate({ONE_MODEL: self.ctx.model}, datasets,
                                                          self._label("evaluate")))

    def _test_metrics(self):
        """Metrics of this round's model on the test set (an output of the round), or None without a test set."""
        if "test" not in self.inputs:
            return None
        metrics = compute_metrics(self.inputs.test, self.ctx.validation.outputs.predictions[ONE_MODEL].test,
                                  self.inputs.metrics_settings, self.ctx.model,
                                  metadata={"call_link_label": self._label("test_metrics")})
        self._out_round("test_metrics", metrics)
        return metrics

    def inspect_validation(self):
        node = self.ctx.validation
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_EVALUATION_FAILED.format(
                round=self.ctx.round, message=f"evaluate <{node.pk}> [{node.exit_status}] {node.exit_message}")
        metrics = compute_metrics(self.inputs.validation, node.outputs.predictions[ONE_MODEL].validation,
                                  self.inputs.metrics_settings, self.ctx.model,
                                  metadata={"call_link_label": self._label("metrics")})
        self._out_round("metrics", metrics)
        test_metrics = self._test_metrics()
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
            target_force_mae=self._optional("target_force_mae"),
            target_energy_mae=self._optional("target_energy_mae"),
            max_dft_labels=self._optional("max_dft_labels"),
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
        row.update(reactive_values(metrics.get_dict()))
        if test_metrics is not None:
            row["test_force_mae"] = test_metrics.get("force_mae")
            row["test_energy_mae_per_atom"] = test_metrics.get("energy_mae_per_atom")
            row.update({f"test_{name}": value for name, value in reactive_values(test_metrics.get_dict()).items()})
        if self.ctx.round:
            row["selected"] = self.ctx.selected.get_list()
        if self.ctx.barrier is not None:
            row.update(self.ctx.barrier)
        self._progress(row)
        energy = f", energy MAE {energy_mae:.4f} eV/atom" if energy_mae is not None else ""
        self.report(f"round {self.ctx.round}: {row['n_labels']} labels, force MAE {force_mae:.4f} eV/Å{energy}"
                    + (f"; stopping: {self.ctx.stop_reason}" if self.ctx.stop_reason else ""))
        return None

    def finalize(self):
        info = {
            "rounds": [{k: v for k, v in row.items() if k in ("round", "n_new", "strategy", "seconds", "finished_at",
                                                              "model_uuid", *BARRIER_CHECK_KEYS)}
                       for row in self.ctx.rows],
            "stop_reason": self.ctx.stop_reason,
            "mode": "oracle" if self.ctx.oracle else "exploration",
            "strategy": self.inputs.strategy.value,
            "initial_strategy": self.inputs.initial_strategy.value,
            "k": self.inputs.k.value,
            "committee_size": self.inputs.committee_size.value,
            "committee_mode": self.inputs.committee_mode.value,
            "seed": self.inputs.seed.value,
            "finetune_seed": self._finetune_seed(),
            "test_uuid": self.inputs.test.uuid if "test" in self.inputs else None,
            "finetune_from": self.inputs.finetune_from.value,
            "target_force_mae": self._optional("target_force_mae"),
            "target_energy_mae": self._optional("target_energy_mae"),
            "max_dft_labels": self._optional("max_dft_labels"),
            "max_rounds": self.inputs.max_rounds.value,
            "target_barrier_error": self._optional("target_barrier_error"),
            "check_first": self.inputs.check_first.value,
            "base_model": self.inputs.base_model.model_name,
            "validation_uuid": self.inputs.validation.uuid,
            "pool_uuid": self.inputs.label_pool.uuid if self.ctx.oracle else None,
        }
        nodes = {}
        for row in self.ctx.rows:
            key = f"{row['round']:02d}"
            outputs = self.ctx.round_nodes[round_key(row["round"])]
            nodes[f"metrics_{key}"] = outputs["metrics"]
            if "test_metrics" in outputs:
                nodes[f"test_metrics_{key}"] = outputs["test_metrics"]
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
