"""The base of every CalcJob that runs ``reactmlip-runner``: inputs, files, calcinfo and exit codes in one place.

Exit codes, file names and settings come from :mod:`aiida_reactmlip.runner.contract`; a CalcJob here writes
no exit code number or message and no default of its own.
"""

from __future__ import annotations

import io
import json

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.frames import Frames, write_extxyz, write_frames_npz
from aiida_reactmlip.runner import contract


def structures_elements(structures) -> list[str]:
    """Sorted element symbols of a LabelledDatasetData or StructureData."""
    if isinstance(structures, LabelledDatasetData):
        return list(structures.base.attributes.get("elements", []))
    return sorted(structures.get_symbols_set())


def structures_frames(structures) -> Frames:
    """The frames of a LabelledDatasetData, or the single frame of a StructureData."""
    if isinstance(structures, LabelledDatasetData):
        return structures.frames
    return Frames.from_atoms([structures.get_ase()])


def structures_n_atoms(structures) -> list[int]:
    """Atoms per frame of a LabelledDatasetData, or of the single frame of a StructureData."""
    if isinstance(structures, LabelledDatasetData):
        return [int(n) for n in structures.get_array("n_atoms")]
    return [len(structures.sites)]


def check_model_covers(model: MlipModelData, elements, what: str) -> str | None:
    """A message when ``model`` lacks an element of ``elements`` (present in ``what``), else None."""
    missing = model.covers(elements)
    if missing:
        return f"model {model.model_name} (pk {model.pk}) does not cover element(s) {', '.join(missing)} present in {what}"
    return None


def uncovered_message(inputs, port: str) -> str | None:
    """A message when input ``model`` lacks an element of the frames of input ``port``, else None."""
    model, structures = inputs.get("model"), inputs.get(port)
    if model is None or structures is None:
        return None
    return check_model_covers(model, structures_elements(structures), f"{port} pk {structures.pk}")


class RunnerCalculation(CalcJob):
    """A CalcJob running the ``reactmlip-runner`` sub-command :attr:`TASK` (serially, by default on one core):
    parser ``reactmlip.<TASK>``, every exit code of :func:`~aiida_reactmlip.runner.contract.calcjob_exit_codes`,
    and :meth:`runner_calcinfo` to write ``input.json`` and the frames and to retrieve the outputs."""

    #: The runner sub-command (``evaluate``, ``relax``, ``neb``, ``md``, ``finetune``).
    TASK = ""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        options = spec.inputs["metadata"]["options"]
        options["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        options["withmpi"].default = False
        options["parser_name"].default = f"reactmlip.{cls.TASK}"
        for code in contract.calcjob_exit_codes(cls.TASK):
            spec.exit_code(code.calcjob_status, code.label, message=code.message)

    def runner_calcinfo(self, folder, runner_input: dict, *, frames: dict[str, Frames], copies: list[tuple],
                        retrieve: list[str], retrieve_temporary: list[str] | None = None) -> datastructures.CalcInfo:
        """Write ``frames`` (file name -> frames) and ``input.json`` into ``folder``; the CalcInfo that copies
        ``copies`` (uuid, source, target), runs the task and retrieves ``retrieve``, ``status.json`` and
        ``runner.log`` (``retrieve_temporary`` only for the parser)."""
        for name, content in frames.items():
            if name.endswith(".npz"):  # the binary frames archive: exact and fast to read
                with folder.open(name, "wb") as handle:
                    write_frames_npz(content, handle)
                continue
            buffer = io.StringIO()
            write_extxyz(content, buffer)
            with folder.open(name, "w", encoding="utf-8") as handle:
                handle.write(buffer.getvalue())
        with folder.open(contract.INPUT_FILE, "w", encoding="utf-8") as handle:
            json.dump(runner_input, handle, indent=2)

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = [self.TASK, "--input", contract.INPUT_FILE]
        codeinfo.stdout_name = contract.LOG_FILE
        codeinfo.withmpi = False
        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = copies
        calcinfo.retrieve_list = [*retrieve, contract.STATUS_FILE, contract.LOG_FILE]
        calcinfo.retrieve_temporary_list = list(retrieve_temporary or [])
        return calcinfo


class ModelRunnerCalculation(RunnerCalculation):
    """A runner CalcJob of one ``model`` on the frames of input :attr:`FRAMES_PORT`, with settings checked by
    :func:`~aiida_reactmlip.runner.contract.check_settings` (input :attr:`SETTINGS_PORT`, a Dict)."""

    FRAMES_PORT = "structures"
    SETTINGS_PORT = "settings"
    #: Keys of the settings Dict that only the CalcJob reads (not passed to the runner).
    CALCJOB_KEYS: tuple[str, ...] = ()

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.inputs.validator = cls.validate_inputs
        spec.input("model", valid_type=MlipModelData, help="The MLIP model file and its metadata.")

    @classmethod
    def raw_settings(cls, inputs) -> dict:
        """The runner settings given in ``inputs`` (CalcJob-only keys left out)."""
        given = inputs[cls.SETTINGS_PORT].get_dict() if cls.SETTINGS_PORT in inputs else {}
        return {k: v for k, v in given.items() if k not in cls.CALCJOB_KEYS}

    @classmethod
    def validate_inputs(cls, inputs, _=None) -> str | None:
        """Refuse before submission: a model that does not cover the frames' elements, settings the contract
        refuses, fixed atoms out of range, then what :meth:`frames_problem` finds."""
        message = uncovered_message(inputs, cls.FRAMES_PORT)
        if message:
            return message
        frames = inputs.get(cls.FRAMES_PORT)
        try:
            settings = contract.check_settings(cls.TASK, cls.raw_settings(inputs))
            if frames is not None and "fixed_atoms" in settings:
                contract.check_fixed_atoms(settings["fixed_atoms"], structures_n_atoms(frames))
        except ValueError as exc:
            return f"reactmlip.{cls.TASK} {cls.SETTINGS_PORT}: {exc}"
        return cls.frames_problem(frames, settings) if frames is not None else None

    @classmethod
    def frames_problem(cls, frames, settings: dict) -> str | None:
        """What the task itself refuses in its ``frames`` under checked ``settings``; none here."""
        return None

    #: Settings written to input.json even when None (None means something to the runner there).
    KEEP_NONE_SETTINGS: tuple[str, ...] = ()

    def input_frames(self):
        """The frames written for the runner (the ``FRAMES_PORT`` input)."""
        return structures_frames(self.inputs[self.FRAMES_PORT])

    def prepare_for_submission(self, folder):
        model: MlipModelData = self.inputs.model
        model_file = contract.MODEL_PREFIX + model.filename
        settings = contract.check_settings(self.TASK, self.raw_settings(self.inputs))
        outputs = contract.OUTPUT_FILES[self.TASK]
        runner_input = {
            "family": model.family,
            "model_name": model.model_name,
            "model_file": model_file,
            **{k: v for k, v in settings.items() if v is not None or k in self.KEEP_NONE_SETTINGS},
            "frames_file": contract.FRAMES_FILE,
            **outputs,
        }
        return self.runner_calcinfo(
            folder, runner_input, frames={contract.FRAMES_FILE: self.input_frames()},
            copies=[(model.uuid, model.filename, model_file)], retrieve=list(outputs.values()),
        )


def settings_input(spec, task: str, port: str = "settings", extra: dict | None = None) -> None:
    """Declare the optional Dict input ``port`` of ``task``'s settings (``extra``: CalcJob-only keys)."""
    defaults = {**contract.SETTINGS[task], **(extra or {})}
    spec.input(port, valid_type=orm.Dict, required=False, help=f"Settings, defaults {defaults}.")
