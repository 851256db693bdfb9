"""Parser of ``reactmlip.evaluate``: predictions.npz -> ArrayData, timing.json -> Dict."""

from __future__ import annotations

import io

import numpy as np
from aiida import orm

from aiida_reactmlip.parsers.base import RunnerParser
from aiida_reactmlip.runner.contract import PREDICTIONS_FILE, TIMING_FILE


class EvaluateParser(RunnerParser):
    """Check the runner's status, then store predictions aligned with the input dataset."""

    REQUIRED_FILES = (PREDICTIONS_FILE,)

    def parse_outputs(self, **kwargs):
        content = self.retrieved.base.repository.get_object_content(PREDICTIONS_FILE, mode="rb")
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

        timing = self.read_json(TIMING_FILE)
        if timing is not None:
            self.out("timing", orm.Dict(timing))
        return None
