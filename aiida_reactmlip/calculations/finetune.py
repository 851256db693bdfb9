"""``reactmlip.finetune``: fine-tune a base MLIP on labelled frames, in one job, into a new ``MlipModelData``."""

from __future__ import annotations

from aiida import orm

from aiida_reactmlip.calculations.base import RunnerCalculation
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.runner import contract
from aiida_reactmlip.runner.contract import finetuned_model_filename as model_filename


def resolve_family(inputs) -> tuple[str | None, str | None]:
    """(family, None) of the inputs, or (None, message) when it cannot be decided or is inconsistent."""
    from aiida_reactmlip.models import normalize_family

    base, family_node = inputs.get("base_model"), inputs.get("family")
    if base is None and family_node is None:
        return None, ("give `base_model` (the MlipModelData to fine-tune), or `family` (Str 'mace') to train "
                      "a MACE model from scratch")

    def canonical(name: str) -> str:
        try:
            return normalize_family(name)
        except ValueError:  # not a family this package knows: the caller says it cannot be fine-tuned
            return str(name).strip().lower()

    family = canonical(family_node.value if family_node is not None else base.family)
    if base is not None and family_node is not None and canonical(base.family) != family:
        return None, (f"`family` {family_node.value!r} contradicts the base model {base.model_name} (pk {base.pk}), "
                      f"a {base.family} model: leave `family` out")
    return family, None


def _check_dataset(what: str, dataset: LabelledDatasetData, base: MlipModelData | None) -> str | None:
    if base is not None:
        missing = base.covers(dataset.elements)
        if missing:
            return (f"base model {base.model_name} (pk {base.pk}) does not cover element(s) {', '.join(missing)} "
                    f"present in the {what} dataset pk {dataset.pk}: fine-tuning cannot add elements to it; "
                    f"choose a base model that covers {', '.join(dataset.elements)}")
    n_frames = dataset.n_frames
    for label in ("energy", "forces"):
        have = dataset.base.attributes.get(f"has_{label}", 0)
        if have != n_frames:
            return (f"{n_frames - have} of the {n_frames} frame(s) of the {what} dataset pk {dataset.pk} have no "
                    f"{label} label: fine-tuning needs energy and forces on every frame")
    return None


def check_hyperparameters(family: str, parameters: dict, from_scratch: bool = False) -> str | None:
    """A message naming the first unknown or invalid hyperparameter of ``parameters``, else None
    (:func:`aiida_reactmlip.training.check_hyperparameters`)."""
    from aiida_reactmlip import training

    try:
        training.check_hyperparameters(family, parameters, from_scratch=from_scratch)
    except ImportError as exc:
        return f"fine-tuning of {family} models is not available on this installation: {exc}"
    except ValueError as exc:
        return str(exc)
    return None


def _minimum_message(family: str, training, validation, parameters: dict) -> str | None:
    """A message when the training set is smaller than fine-tuning ``family`` needs, else None."""
    n_valid = validation.n_frames if validation is not None else 0
    holds_out = family == "mace" and n_valid == 0 and (parameters.get("valid_fraction") or 0) > 0
    minimum = contract.MIN_TRAIN_FRAMES_MACE_WITHOUT_VALIDATION if holds_out else contract.MIN_TRAIN_FRAMES
    if training.n_frames >= minimum:
        return None
    extra = (" (MACE with valid_fraction > 0 and no validation frames holds out part of the training set; "
             "give `validation` or valid_fraction 0)") if holds_out else ""
    return (f"the training dataset pk {training.pk} has {training.n_frames} frame(s); fine-tuning {family} "
            f"needs at least {minimum}{extra}")


def validate_inputs(inputs, _):
    """Refuse before submission: no family, a family without fine-tuning, uncovered elements, unlabelled,
    empty or too small training sets, unknown or invalid hyperparameters."""
    from aiida_reactmlip.training import FINETUNE_FAMILIES

    family, message = resolve_family(inputs)
    if message:
        return message
    if family not in FINETUNE_FAMILIES:
        return f"model family {family!r} has no fine-tuning support; supported: {', '.join(FINETUNE_FAMILIES)}"
    base = inputs.get("base_model")
    if base is None and family not in contract.FROM_SCRATCH_FAMILIES:
        return (f"`base_model` is required for {family}: only {', '.join(contract.FROM_SCRATCH_FAMILIES)} trains "
                f"from scratch here")
    training, validation = inputs.get("training"), inputs.get("validation")
    for what, dataset in (("training", training), ("validation", validation)):
        if dataset is not None:
            message = _check_dataset(what, dataset, base)
            if message:
                return message
    parameters = inputs["parameters"].get_dict() if "parameters" in inputs else {}
    if training is not None:
        message = _minimum_message(family, training, validation, parameters)
        if message:
            return message
    if "parameters" in inputs:
        return check_hyperparameters(family, parameters, from_scratch=base is None)
    return None


#: Outputs: all optional, as a diverged or failed training still stores its history and report.
OUTPUTS = {
    "model": (MlipModelData, "The fine-tuned model (source 'finetune', base_model_uuid, training_dataset_uuid)."),
    "history": (orm.ArrayData, "Per epoch: epoch, train_loss, valid_energy_mae (eV/atom), valid_force_mae (eV/Å)."),
    "report": (orm.Dict, "Hyperparameters (seed included), seconds, n_train, n_valid, sha256, model_info."),
}


class FinetuneCalculation(RunnerCalculation):
    """Fine-tune ``base_model`` on the ``training`` frames (energies in eV, forces in eV/Å), validated on
    ``validation``, into a new :class:`MlipModelData` linked to its base model and training data.

    Runs ``reactmlip-runner finetune`` on the computer of ``code`` (CPU by default; hyperparameter
    ``device`` "cuda" on a GPU node). The runner does not import AiiDA. The new model (output ``model``)
    is usable by ``reactmlip.evaluate``, ``reactmlip.relax`` and ``reactmlip.neb`` like a registry model.
    """

    TASK = "finetune"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.inputs.validator = validate_inputs
        spec.input("base_model", valid_type=MlipModelData, required=False,
                   help="The model to fine-tune; optional only to train a MACE model from scratch (then give family).")
        spec.input("training", valid_type=LabelledDatasetData, help="Training frames (energy and forces labels).")
        spec.input("family", valid_type=orm.Str, required=False, help="Model family ('mace' to train from scratch); "
                   "taken from base_model when left out.")
        spec.input("validation", valid_type=LabelledDatasetData, required=False,
                   help="Validation frames: per-epoch energy (eV/atom) and force (eV/Å) MAE in the history.")
        spec.input("model_name", valid_type=orm.Str, required=False, help="Name of the new model; default "
                   "'<base model name>-ft-<first 8 of its sha256>'.")
        spec.input("parameters", valid_type=orm.Dict, required=False,
                   help="Hyperparameters (see aiida_reactmlip.training.default_hyperparameters(family)).")
        for name, (valid_type, help_text) in OUTPUTS.items():
            spec.output(name, valid_type=valid_type, required=False, help=help_text)

    def prepare_for_submission(self, folder):
        family, message = resolve_family(self.inputs)
        if message:  # pragma: no cover - the validator refused it already
            raise ValueError(message)
        base: MlipModelData | None = self.inputs.get("base_model")
        validation = self.inputs.get("validation")
        frames = {contract.TRAIN_FILE: self.inputs.training.frames}
        if validation is not None and validation.n_frames > 0:
            frames[contract.VALID_FILE] = validation.frames
        base_filename = contract.BASE_MODEL_PREFIX + base.filename if base is not None else None
        runner_input = {
            "family": family,
            "base_model_file": base_filename,
            "model_name": base.model_name if base is not None else f"{family} from scratch",
            "train_file": contract.TRAIN_FILE,
            "valid_file": contract.VALID_FILE if contract.VALID_FILE in frames else None,
            "output_model_file": model_filename(family),
            "history_file": contract.HISTORY_FILE,
            "report_file": contract.FINETUNE_REPORT_FILE,
            "log_file": contract.TRAINING_LOG_FILE,
            "hyperparameters": self.inputs.parameters.get_dict() if "parameters" in self.inputs else {},
        }
        return self.runner_calcinfo(
            folder, runner_input, frames=frames,
            copies=[(base.uuid, base.filename, base_filename)] if base is not None else [],
            retrieve=[contract.HISTORY_FILE, contract.FINETUNE_REPORT_FILE, contract.TRAINING_LOG_FILE],
            # the model file becomes the MlipModelData output: kept once, not also in the retrieved folder
            retrieve_temporary=[model_filename(family)],
        )
