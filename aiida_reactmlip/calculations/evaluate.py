"""``reactmlip.evaluate``: one MLIP on a whole dataset in one job (energies, forces, stress)."""

from __future__ import annotations

import io
import json

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.frames import write_extxyz

FRAMES_FILE = "frames.extxyz"
INPUT_FILE = "input.json"
PREDICTIONS_FILE = "predictions.npz"
TIMING_FILE = "timing.json"
from aiida_reactmlip.calculations.runner import STATUS_FILE  # noqa: E402  (written by the runner)
LOG_FILE = "runner.log"

#: Settings the runner understands, with defaults.
DEFAULT_SETTINGS = {"device": "cpu", "batch_size": 16, "mode": "auto", "compute_stress": True,
                    "workers": None, "num_threads": None}


def validate_inputs(inputs, _):
    """Refuse before submission: a model that does not cover the dataset's elements, unknown settings."""
    model = inputs.get("model")
    dataset = inputs.get("dataset")
    if model is not None and dataset is not None:
        missing = model.covers(dataset.base.attributes.get("elements", []))
        if missing:
            return (
                f"model {model.model_name} (pk {model.pk}) does not cover element(s) {', '.join(missing)} "
                f"present in dataset pk {dataset.pk}"
            )
    settings = inputs.get("settings")
    if settings is not None:
        unknown = set(settings.get_dict()) - set(DEFAULT_SETTINGS)
        if unknown:
            return f"unknown evaluate setting(s) {', '.join(sorted(unknown))}; known: {', '.join(DEFAULT_SETTINGS)}"
    return None


class EvaluateCalculation(CalcJob):
    """Predict energies (eV), forces (eV/Å) and stress (eV/Å^3) of every frame of a dataset with one MLIP.

    Runs ``reactmlip-runner evaluate`` on the computer of ``code`` (localhost, a GPU node, an HPC cluster):
    the runner does not import AiiDA. On an accelerator it batches inference where the model family
    supports it; on CPU it shares the frames among worker processes, one per core it may use (its
    affinity mask: ask the scheduler for cores, e.g. ``resources`` ``num_cores_per_mpiproc``). Settings
    ``workers`` and ``num_threads`` (torch threads per process) override that choice.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("model", valid_type=MlipModelData, help="The MLIP model file and its metadata.")
        spec.input("dataset", valid_type=LabelledDatasetData, help="Frames to evaluate (labels are not used).")
        spec.input("settings", valid_type=orm.Dict, required=False,
                   help=f"Runner settings, defaults {DEFAULT_SETTINGS}.")
        spec.inputs.validator = validate_inputs
        spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        spec.inputs["metadata"]["options"]["withmpi"].default = False
        spec.inputs["metadata"]["options"]["parser_name"].default = "reactmlip.evaluate"
        spec.output("predictions", valid_type=orm.ArrayData,
                    help="Arrays energies (F,) eV, forces (N,3) eV/Å, stress (F,6) eV/Å^3, n_atoms (F,).")
        spec.output("timing", valid_type=orm.Dict, help="Model load and evaluation wall times (s).")
        spec.exit_code(300, "ERROR_MISSING_OUTPUT", message="The runner wrote no {filename}: see runner.log.")
        spec.exit_code(310, "ERROR_RUNNER_INPUT", message="The runner could not read its input: {message}")
        spec.exit_code(311, "ERROR_ELEMENT_NOT_COVERED", message="{message}")
        spec.exit_code(312, "ERROR_MODEL_LOAD", message="The model could not be loaded: {message}")
        spec.exit_code(313, "ERROR_RUNNER_FAILED", message="The runner failed: {message}")
        spec.exit_code(320, "ERROR_INCONSISTENT_OUTPUT", message="Predictions do not match the dataset: {message}")

    def prepare_for_submission(self, folder):
        settings = {**DEFAULT_SETTINGS, **(self.inputs.settings.get_dict() if "settings" in self.inputs else {})}
        model: MlipModelData = self.inputs.model
        model_filename = f"model_{model.filename}"
        buffer = io.StringIO()
        write_extxyz(self.inputs.dataset.frames, buffer)
        with folder.open(FRAMES_FILE, "w", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())
        runner_input = {
            "family": model.family,
            "model_name": model.model_name,
            "model_file": model_filename,
            "frames_file": FRAMES_FILE,
            "output_file": PREDICTIONS_FILE,
            "timing_file": TIMING_FILE,
            **settings,
        }
        with folder.open(INPUT_FILE, "w", encoding="utf-8") as handle:
            json.dump(runner_input, handle, indent=2)

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ["evaluate", "--input", INPUT_FILE]
        codeinfo.stdout_name = LOG_FILE
        codeinfo.withmpi = False

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = [(model.uuid, model.filename, model_filename)]
        calcinfo.retrieve_list = [PREDICTIONS_FILE, TIMING_FILE, STATUS_FILE, LOG_FILE]
        return calcinfo
