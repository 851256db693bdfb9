"""Parser of ``reactmlip.evaluate``: predictions.npz -> ArrayData, timing.json -> Dict."""

from __future__ import annotations

import io
import json

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_reactmlip.calculations.evaluate import PREDICTIONS_FILE, TIMING_FILE
from aiida_reactmlip.parsers.common import RUNNER_EXIT_CODES, runner_status

class EvaluateParser(Parser):
    """Check the runner's status, then store predictions aligned with the input dataset."""

    def parse(self, **kwargs):
        retrieved = self.retrieved
        names = retrieved.base.repository.list_object_names()
        code, message = runner_status(self)
        if code != 0:
            return self.exit_codes[RUNNER_EXIT_CODES.get(code, "ERROR_RUNNER_FAILED")].format(message=message)
        if PREDICTIONS_FILE not in names:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=PREDICTIONS_FILE)

        content = retrieved.base.repository.get_object_content(PREDICTIONS_FILE, mode="rb")
        with np.load(io.BytesIO(content)) as npz:
            energies = np.asarray(npz["energies"], dtype=float)
            forces = np.asarray(npz["forces"], dtype=float)
            stress = np.asarray(npz["stress"], dtype=float)

        dataset = self.node.inputs.dataset
        n_atoms = np.asarray(dataset.get_array("n_atoms"))
        if energies.shape != (len(n_atoms),) or forces.shape != (int(n_atoms.sum()), 3):
            return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                message=f"energies {energies.shape}, forces {forces.shape} for {len(n_atoms)} frames "
                f"with {int(n_atoms.sum())} atoms"
            )
        predictions = orm.ArrayData()
        predictions.set_array("energies", energies)
        predictions.set_array("forces", forces)
        predictions.set_array("stress", stress)
        predictions.set_array("n_atoms", n_atoms)
        predictions.base.attributes.set("units", {"energies": "eV", "forces": "eV/Angstrom", "stress": "eV/Angstrom^3"})
        predictions.base.attributes.set("model_uuid", self.node.inputs.model.uuid)
        predictions.base.attributes.set("dataset_uuid", dataset.uuid)
        self.out("predictions", predictions)

        if TIMING_FILE in names:
            self.out("timing", orm.Dict(json.loads(retrieved.base.repository.get_object_content(TIMING_FILE))))
        return None
