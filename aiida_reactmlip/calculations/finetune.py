"""``reactmlip.finetune``: fine-tune a base MLIP on labelled frames, in one job, into a new ``MlipModelData``."""

from __future__ import annotations

import io
import json

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_reactmlip.calculations.runner import STATUS_FILE
from aiida_reactmlip.calculations.runner_finetune import FROM_SCRATCH_FAMILIES, MODEL_SUFFIX
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.frames import write_extxyz

TRAIN_FILE = "train.extxyz"
VALID_FILE = "valid.extxyz"
INPUT_FILE = "input.json"
HISTORY_FILE = "history.json"
REPORT_FILE = "report.json"
TRAINING_LOG_FILE = "training.log"
LOG_FILE = "runner.log"
MODEL_STEM = "finetuned"

#: Fewest training frames accepted; MACE without validation frames but with ``valid_fraction`` > 0 holds
#: out part of its training set, and needs one frame more.
MIN_TRAIN_FRAMES = 1
MIN_TRAIN_FRAMES_MACE_WITHOUT_VALIDATION = 2


def model_filename(family: str) -> str:
    """Name of the fine-tuned model file the runner writes (and the CalcJob retrieves)."""
    return MODEL_STEM + MODEL_SUFFIX[family]


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


def check_hyperparameters(family: str, parameters: dict) -> str | None:
    """A message naming the first unknown or invalid hyperparameter of ``parameters``, else None."""
    from aiida_reactmlip import training

    try:
        known = training.default_hyperparameters(family)
    except training.TrainingError as exc:
        return str(exc)
    except ImportError as exc:
        return f"fine-tuning of {family} models is not available on this installation: {exc}"
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        return f"unknown {family} hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
    from aiida_reactmlip.training.common import check_common_hyperparameters

    try:
        check_common_hyperparameters({**known, **parameters})
    except training.TrainingError as exc:
        return f"hyperparameters: {exc}"
    except KeyError:  # a family without one of the common hyperparameters: the runner checks its own
        pass
    return None


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
    if base is None and family not in FROM_SCRATCH_FAMILIES:
        return (f"`base_model` is required for {family}: only {', '.join(FROM_SCRATCH_FAMILIES)} trains from scratch "
                f"here")
    training, validation = inputs.get("training"), inputs.get("validation")
    for what, dataset in (("training", training), ("validation", validation)):
        if dataset is not None:
            message = _check_dataset(what, dataset, base)
            if message:
                return message
    if training is not None:
        n_valid = validation.n_frames if validation is not None else 0
        minimum = MIN_TRAIN_FRAMES
        parameters = inputs["parameters"].get_dict() if "parameters" in inputs else {}
        if family == "mace" and n_valid == 0 and (parameters.get("valid_fraction") or 0) > 0:
            minimum = MIN_TRAIN_FRAMES_MACE_WITHOUT_VALIDATION
        if training.n_frames < minimum:
            extra = (" (MACE with valid_fraction > 0 and no validation frames holds out part of the training set; "
                     "give `validation` or valid_fraction 0)") if minimum == MIN_TRAIN_FRAMES_MACE_WITHOUT_VALIDATION else ""
            return (f"the training dataset pk {training.pk} has {training.n_frames} frame(s); fine-tuning {family} "
                    f"needs at least {minimum}{extra}")
    parameters = inputs.get("parameters")
    if parameters is not None:
        message = check_hyperparameters(family, parameters.get_dict())
        if message:
            return message
    return None


class FinetuneCalculation(CalcJob):
    """Fine-tune ``base_model`` on the ``training`` frames (energies in eV, forces in eV/Å), validated on
    ``validation``, into a new :class:`MlipModelData` linked to its base model and training data.

    Runs ``reactmlip-runner finetune`` on the computer of ``code`` (CPU by default; hyperparameter
    ``device`` "cuda" on a GPU node). The runner does not import AiiDA. The new model (output ``model``)
    is usable by ``reactmlip.evaluate``, ``reactmlip.relax`` and ``reactmlip.neb`` like a registry model.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("base_model", valid_type=MlipModelData, required=False,
                   help="The model to fine-tune; optional only to train a MACE model from scratch (then give family).")
        spec.input("family", valid_type=orm.Str, required=False,
                   help="Model family ('mace' to train from scratch); taken from base_model when left out.")
        spec.input("training", valid_type=LabelledDatasetData, help="Training frames (energy and forces labels).")
        spec.input("validation", valid_type=LabelledDatasetData, required=False,
                   help="Validation frames: per-epoch energy (eV/atom) and force (eV/Å) MAE in the history.")
        spec.input("parameters", valid_type=orm.Dict, required=False,
                   help="Hyperparameters (see aiida_reactmlip.training.default_hyperparameters(family)).")
        spec.input("model_name", valid_type=orm.Str, required=False,
                   help="Name of the new model; default '<base model name>-ft-<first 8 of its sha256>'.")
        spec.inputs.validator = validate_inputs
        spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        spec.inputs["metadata"]["options"]["withmpi"].default = False
        spec.inputs["metadata"]["options"]["parser_name"].default = "reactmlip.finetune"
        spec.output("model", valid_type=MlipModelData, required=False,
                    help="The fine-tuned model (source 'finetune', base_model_uuid, training_dataset_uuid).")
        spec.output("history", valid_type=orm.ArrayData, required=False,
                    help="Per epoch: epoch, train_loss, valid_energy_mae (eV/atom), valid_force_mae (eV/Å).")
        spec.output("report", valid_type=orm.Dict, required=False,
                    help="Hyperparameters (seed included), seconds, n_train, n_valid, sha256, model_info.")
        spec.exit_code(300, "ERROR_MISSING_OUTPUT", message="The runner wrote no {filename}: see runner.log.")
        spec.exit_code(310, "ERROR_RUNNER_INPUT", message="The runner refused its input: {message}")
        spec.exit_code(311, "ERROR_ELEMENT_NOT_COVERED", message="{message}")
        spec.exit_code(312, "ERROR_MODEL_LOAD", message="The base model could not be loaded: {message}")
        spec.exit_code(313, "ERROR_RUNNER_FAILED", message="The fine-tuning failed: {message}")
        spec.exit_code(315, "ERROR_TRAINING_DIVERGED", message="{message}")
        spec.exit_code(320, "ERROR_INCONSISTENT_OUTPUT", message="The model file does not match the report: {message}")

    def prepare_for_submission(self, folder):
        family, message = resolve_family(self.inputs)
        if message:  # pragma: no cover - the validator refused it already
            raise ValueError(message)
        parameters = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        base: MlipModelData | None = self.inputs.get("base_model")

        def write_frames(name: str, dataset: LabelledDatasetData) -> None:
            buffer = io.StringIO()
            write_extxyz(dataset.frames, buffer)
            with folder.open(name, "w", encoding="utf-8") as handle:
                handle.write(buffer.getvalue())

        write_frames(TRAIN_FILE, self.inputs.training)
        validation = self.inputs.get("validation")
        has_validation = validation is not None and validation.n_frames > 0
        if has_validation:
            write_frames(VALID_FILE, validation)
        base_filename = f"base_{base.filename}" if base is not None else None
        runner_input = {
            "family": family,
            "base_model_file": base_filename,
            "model_name": base.model_name if base is not None else f"{family} from scratch",
            "train_file": TRAIN_FILE,
            "valid_file": VALID_FILE if has_validation else None,
            "output_model_file": model_filename(family),
            "history_file": HISTORY_FILE,
            "report_file": REPORT_FILE,
            "log_file": TRAINING_LOG_FILE,
            "hyperparameters": parameters,
        }
        with folder.open(INPUT_FILE, "w", encoding="utf-8") as handle:
            json.dump(runner_input, handle, indent=2)

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ["finetune", "--input", INPUT_FILE]
        codeinfo.stdout_name = LOG_FILE
        codeinfo.withmpi = False

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = [(base.uuid, base.filename, base_filename)] if base is not None else []
        calcinfo.retrieve_list = [HISTORY_FILE, REPORT_FILE, STATUS_FILE, LOG_FILE, TRAINING_LOG_FILE]
        # the model file becomes the MlipModelData output: kept once, not also in the retrieved folder
        calcinfo.retrieve_temporary_list = [model_filename(family)]
        return calcinfo
