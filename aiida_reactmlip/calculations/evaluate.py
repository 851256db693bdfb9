"""``reactmlip.evaluate``: one MLIP on a whole dataset in one job (energies, forces, stress);
``reactmlip.evaluate_many``: several MLIPs on several datasets in one job."""

from __future__ import annotations

from aiida import orm

from aiida_reactmlip.calculations.base import (
    ModelRunnerCalculation,
    RunnerCalculation,
    check_model_covers,
    settings_input,
    structures_elements,
)
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.runner import contract

#: Settings the runner understands, with defaults (:data:`aiida_reactmlip.runner.contract.EVALUATE_SETTINGS`).
DEFAULT_SETTINGS = contract.EVALUATE_SETTINGS


class EvaluateCalculation(ModelRunnerCalculation):
    """Predict energies (eV), forces (eV/Å) and stress (eV/Å^3) of every frame of a dataset with one MLIP.

    Runs ``reactmlip-runner evaluate`` on the computer of ``code`` (localhost, a GPU node, an HPC cluster):
    the runner does not import AiiDA. On an accelerator it batches inference where the model family
    supports it; on CPU it shares the frames among worker processes, one per core it may use (its
    affinity mask: ask the scheduler for cores, e.g. ``resources`` ``num_cores_per_mpiproc``). Settings
    ``workers`` and ``num_threads`` (torch threads per process) override that choice.
    """

    TASK = "evaluate"
    FRAMES_PORT = "dataset"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("dataset", valid_type=LabelledDatasetData, help="Frames to evaluate (labels are not used).")
        settings_input(spec, cls.TASK)
        spec.output("predictions", valid_type=orm.ArrayData,
                    help="Arrays energies (F,) eV, forces (N,3) eV/Å, stress (F,6) eV/Å^3, n_atoms (F,).")
        spec.output("timing", valid_type=orm.Dict, help="Model load and evaluation wall times (s).")


class EvaluateManyCalculation(RunnerCalculation):
    """Every model of ``models`` on every dataset of ``datasets`` in one job (``reactmlip-runner
    evaluate_many``): each model loaded once, each dataset written and read once, one runner start and one
    AiiDA job instead of one per pair. For the many small evaluations of a workflow: a loop's committee on
    its pool, a model on its validation and test sets.

    Outputs ``predictions.<model key>.<dataset key>``, each what ``reactmlip.evaluate`` stores as
    ``predictions`` (energies eV, forces eV/Å, stress eV/Å^3, n_atoms), and ``timing``.
    """

    TASK = contract.EVALUATE_MANY
    #: The model's key in ``models`` and ``predictions`` when a job evaluates one model on several datasets.
    ONE_MODEL_KEY = "model"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.inputs.validator = cls.validate_inputs
        spec.input_namespace("models", valid_type=MlipModelData, dynamic=True,
                             help="The models, by key (letters, digits, single underscores).")
        spec.input_namespace("datasets", valid_type=LabelledDatasetData, dynamic=True,
                             help="The frame sets, by key; every model is evaluated on each (labels are not used).")
        settings_input(spec, "evaluate")
        spec.output_namespace("predictions", valid_type=orm.ArrayData, dynamic=True,
                              help="predictions.<model key>.<dataset key>: arrays energies (F,) eV, forces (N,3) "
                                   "eV/Å, stress (F,6) eV/Å^3, n_atoms (F,).")
        spec.output("timing", valid_type=orm.Dict, help="Model loads, each evaluation and the job's wall time (s).")

    @classmethod
    def validate_inputs(cls, inputs, _=None) -> str | None:
        """Refuse before submission: no model or no dataset, a key that cannot name a file and a link, a model
        that does not cover a dataset's elements, settings the contract refuses."""
        models, datasets = dict(inputs.get("models", {})), dict(inputs.get("datasets", {}))
        if not models or not datasets:
            return "reactmlip.evaluate_many needs at least one model (models) and one dataset (datasets)"
        try:
            for key in models:
                contract.check_many_key(key, "models")
            for key in datasets:
                contract.check_many_key(key, "datasets")
            contract.check_settings("evaluate", inputs["settings"].get_dict() if "settings" in inputs else {})
        except ValueError as exc:
            return f"reactmlip.evaluate_many: {exc}"
        for model in models.values():
            for key, dataset in datasets.items():
                message = check_model_covers(model, structures_elements(dataset), f"datasets.{key} pk {dataset.pk}")
                if message:
                    return message
        return None

    def prepare_for_submission(self, folder):
        settings = contract.check_settings("evaluate", self.inputs.settings.get_dict() if "settings" in self.inputs else {})
        models, copies, frames = {}, [], {}
        for key, model in self.inputs.models.items():
            target = f"{contract.MODEL_PREFIX}{key}_{model.filename}"  # the file keeps its name (and suffix)
            copies.append((model.uuid, model.filename, target))
            models[key] = {"family": model.family, "model_name": model.model_name, "model_file": target}
        for key, dataset in self.inputs.datasets.items():
            frames[f"frames_{key}.npz"] = dataset.frames
        runner_input = {
            "models": models,
            "frames": {key: f"frames_{key}.npz" for key in self.inputs.datasets},
            "settings": {k: v for k, v in settings.items() if v is not None},
            "timing_file": contract.TIMING_FILE,
        }
        retrieve = [contract.many_predictions_file(m, d) for m in self.inputs.models for d in self.inputs.datasets]
        return self.runner_calcinfo(folder, runner_input, frames=frames, copies=copies,
                                    retrieve=[*retrieve, contract.TIMING_FILE])
