"""Parsers of ``reactmlip.evaluate`` and ``reactmlip.evaluate_many``: predictions npz -> ArrayData, timing.json
-> Dict."""

from __future__ import annotations

import io

import numpy as np
from aiida import orm

from aiida_reactmlip.parsers.base import RunnerParser
from aiida_reactmlip.runner import contract
from aiida_reactmlip.runner.contract import PREDICTIONS_FILE, TIMING_FILE


def predictions_node(content: bytes, dataset, model) -> orm.ArrayData | str:
    """The predictions of ``model`` on ``dataset`` from a runner's npz ``content`` (energies eV, forces eV/Å,
    stress eV/Å^3, n_atoms), or a message when their shapes do not match the dataset."""
    with np.load(io.BytesIO(content)) as npz:
        energies = np.asarray(npz["energies"], dtype=float)
        forces = np.asarray(npz["forces"], dtype=float)
        stress = np.asarray(npz["stress"], dtype=float)
    n_atoms = np.asarray(dataset.get_array("n_atoms"))
    if energies.shape != (len(n_atoms),) or forces.shape != (int(n_atoms.sum()), 3):
        return (f"energies {energies.shape}, forces {forces.shape} for {len(n_atoms)} frames "
                f"with {int(n_atoms.sum())} atoms")
    predictions = orm.ArrayData()
    predictions.set_array("energies", energies)
    predictions.set_array("forces", forces)
    predictions.set_array("stress", stress)
    predictions.set_array("n_atoms", n_atoms)
    predictions.base.attributes.set("units", {"energies": "eV", "forces": "eV/Angstrom", "stress": "eV/Angstrom^3"})
    predictions.base.attributes.set("model_uuid", model.uuid)
    predictions.base.attributes.set("dataset_uuid", dataset.uuid)
    return predictions


class EvaluateParser(RunnerParser):
    """Check the runner's status, then store predictions aligned with the input dataset."""

    REQUIRED_FILES = (PREDICTIONS_FILE,)

    def parse_outputs(self, **kwargs):
        content = self.retrieved.base.repository.get_object_content(PREDICTIONS_FILE, mode="rb")
        predictions = predictions_node(content, self.node.inputs.dataset, self.node.inputs.model)
        if isinstance(predictions, str):
            return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(message=predictions)
        self.out("predictions", predictions)
        timing = self.read_json(TIMING_FILE)
        if timing is not None:
            self.out("timing", orm.Dict(timing))
        return None


class EvaluateManyParser(RunnerParser):
    """Check the runner's status, then store the predictions of every model on every dataset; nothing is stored
    unless every pair's file is there and consistent (a job's outputs are all or none)."""

    REQUIRED_FILES = (TIMING_FILE,)

    def parse_outputs(self, **kwargs):
        inputs = self.node.inputs
        outputs = {}
        for model_key, model in inputs.models.items():
            for dataset_key, dataset in inputs.datasets.items():
                filename = contract.many_predictions_file(model_key, dataset_key)
                if not self.has_file(filename):
                    return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=filename)
                content = self.retrieved.base.repository.get_object_content(filename, mode="rb")
                predictions = predictions_node(content, dataset, model)
                if isinstance(predictions, str):
                    return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                        message=f"model {model_key} on dataset {dataset_key}: {predictions}")
                outputs[contract.many_output_key(model_key, dataset_key)] = predictions
        for port, predictions in outputs.items():
            self.out(port, predictions)
        self.out("timing", orm.Dict(self.read_json(TIMING_FILE)))
        return None
