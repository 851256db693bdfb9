"""Parser of ``reactmlip.relax``: relaxed.extxyz -> LabelledDatasetData, results.json -> Dict, trajectory."""

from __future__ import annotations

import io
import json

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_reactmlip.calculations.relax import OUTPUT_FILE, RESULTS_FILE, TRAJECTORY_FILE
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.frames import read_extxyz
from aiida_reactmlip.parsers.common import RUNNER_EXIT_CODES, runner_status

def read_dataset(parser: Parser, filename: str, model) -> LabelledDatasetData:
    text = parser.retrieved.base.repository.get_object_content(filename)
    frames = read_extxyz(io.StringIO(text))
    for info in frames.info:
        info["model_uuid"] = model.uuid
    return LabelledDatasetData(frames=frames)


class RelaxParser(Parser):
    """Store the relaxed frames and per-frame results; exit 401 (after storing) when a frame did not converge."""

    def parse(self, **kwargs):
        code, message = runner_status(self)
        if code not in (0, 14):
            return self.exit_codes[RUNNER_EXIT_CODES.get(code, "ERROR_RUNNER_FAILED")].format(message=message)
        names = self.retrieved.base.repository.list_object_names()
        for filename in (OUTPUT_FILE, RESULTS_FILE):
            if filename not in names:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=filename)
        relaxed = read_dataset(self, OUTPUT_FILE, self.node.inputs.model)
        results = json.loads(self.retrieved.base.repository.get_object_content(RESULTS_FILE))
        structures = self.node.inputs.structures
        expected = (
            list(structures.get_array("n_atoms")) if isinstance(structures, LabelledDatasetData)
            else [len(structures.sites)]
        )
        if list(relaxed.get_array("n_atoms")) != [int(n) for n in expected]:
            return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                message=f"relaxed frames have {list(relaxed.get_array('n_atoms'))} atoms, inputs {expected}"
            )
        self.out("relaxed", relaxed)
        self.out("results", orm.Dict(results))
        if TRAJECTORY_FILE in names:
            content = self.retrieved.base.repository.get_object_content(TRAJECTORY_FILE, mode="rb")
            trajectory = orm.ArrayData()
            with np.load(io.BytesIO(content)) as npz:
                for name in npz.files:
                    trajectory.set_array(name, np.asarray(npz[name], dtype=float))
            trajectory.base.attributes.set("units", {"energies": "eV", "fmax": "eV/Angstrom"})
            self.out("trajectory", trajectory)
        if code == 14 or results.get("not_converged"):
            return self.exit_codes.ERROR_NOT_CONVERGED.format(message=message or f"frames {results['not_converged']}")
        return None
