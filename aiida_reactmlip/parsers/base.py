"""The base of every ``reactmlip-runner`` parser: the runner's ``status.json`` mapped through the contract.

A non-zero runner exit status becomes the CalcJob exit code of the same label
(:func:`aiida_reactmlip.runner.contract.label_of`); no exit code number is written in a parser.
"""

from __future__ import annotations

import abc
import io
import json

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.frames import read_extxyz
from aiida_reactmlip.runner import contract


class RunnerParser(Parser):
    """Read ``status.json``; on a runner failure return its exit code, else check :attr:`REQUIRED_FILES` and
    call :meth:`parse_outputs`.

    Runner exit statuses in :attr:`OUTPUTS_DESPITE` (their outputs are written all the same, e.g.
    ``EXIT_NOT_CONVERGED``) are parsed first and returned afterwards, unless :meth:`parse_outputs` returned
    an exit code of its own.
    """

    #: Files the runner always writes on success.
    REQUIRED_FILES: tuple[str, ...] = ()
    #: Runner exit statuses after which the outputs are parsed and stored all the same.
    OUTPUTS_DESPITE: tuple[int, ...] = ()

    def parse(self, **kwargs):
        status, message = self.runner_status()
        self.runner_message = message
        early = self.parse_always()
        if early is not None:
            return early
        if status not in (contract.EXIT_OK, *self.OUTPUTS_DESPITE):
            return self.runner_exit_code(status, message)
        names = self.retrieved.base.repository.list_object_names()
        for filename in self.REQUIRED_FILES:
            if filename not in names:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=filename)
        outcome = self.parse_outputs(**kwargs)
        if outcome is None and status != contract.EXIT_OK:
            return self.runner_exit_code(status, message)
        return outcome

    def parse_always(self):
        """Store what the runner writes even when it fails; an exit code to stop with, or None."""
        return None

    @abc.abstractmethod
    def parse_outputs(self, **kwargs):
        """Store the outputs of a run that wrote them; an exit code, or None (every runner parser defines it)."""

    def runner_status(self) -> tuple[int, str]:
        """(exit status, message) from the retrieved ``status.json``; (0, '') when the runner wrote none."""
        if contract.STATUS_FILE not in self.retrieved.base.repository.list_object_names():
            return contract.EXIT_OK, ""
        status = json.loads(self.retrieved.base.repository.get_object_content(contract.STATUS_FILE))
        return int(status.get("exit_code", 0)), status.get("message", "no message")

    def runner_exit_code(self, status: int, message: str):
        """The CalcJob exit code of a non-zero runner exit status, formatted with the runner's message."""
        return self.exit_codes[contract.label_of(status)].format(message=message)

    def has_file(self, name: str) -> bool:
        return name in self.retrieved.base.repository.list_object_names()

    def read_json(self, name: str):
        """The JSON content of retrieved file ``name``, or None when it was not retrieved."""
        if not self.has_file(name):
            return None
        return json.loads(self.retrieved.base.repository.get_object_content(name))

    def read_arrays(self, name: str, units: dict[str, str]) -> orm.ArrayData:
        """An ArrayData with every array of the retrieved npz file ``name`` (as floats), ``units`` attribute."""
        content = self.retrieved.base.repository.get_object_content(name, mode="rb")
        node = orm.ArrayData()
        with np.load(io.BytesIO(content)) as npz:
            for key in npz.files:
                node.set_array(key, np.asarray(npz[key], dtype=float))
        node.base.attributes.set("units", units)
        return node

    def read_dataset(self, name: str) -> LabelledDatasetData:
        """The frames of the retrieved extxyz file ``name``, each tagged with the model's ``model_uuid``."""
        frames = read_extxyz(io.StringIO(self.retrieved.base.repository.get_object_content(name)))
        for info in frames.info:
            info["model_uuid"] = self.node.inputs.model.uuid
        return LabelledDatasetData(frames=frames)
