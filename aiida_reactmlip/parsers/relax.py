"""Parser of ``reactmlip.relax``: relaxed.extxyz -> LabelledDatasetData, results.json -> Dict, trajectory."""

from __future__ import annotations

from aiida import orm

from aiida_reactmlip.calculations.base import structures_n_atoms
from aiida_reactmlip.parsers.base import RunnerParser
from aiida_reactmlip.runner.contract import (
    EXIT_NOT_CONVERGED,
    RELAX_RESULTS_FILE,
    RELAX_TRAJECTORY_FILE,
    RELAXED_FILE,
)


class RelaxParser(RunnerParser):
    """Store the relaxed frames and per-frame results; ``ERROR_NOT_CONVERGED`` (after storing) when a frame
    did not converge."""

    REQUIRED_FILES = (RELAXED_FILE, RELAX_RESULTS_FILE)
    OUTPUTS_DESPITE = (EXIT_NOT_CONVERGED,)

    def parse_outputs(self, **kwargs):
        relaxed = self.read_dataset(RELAXED_FILE)
        results = self.read_json(RELAX_RESULTS_FILE)
        expected = structures_n_atoms(self.node.inputs.structures)
        if list(relaxed.get_array("n_atoms")) != expected:
            return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                message=f"relaxed frames have {list(relaxed.get_array('n_atoms'))} atoms, inputs {expected}"
            )
        self.out("relaxed", relaxed)
        self.out("results", orm.Dict(results))
        if self.has_file(RELAX_TRAJECTORY_FILE):
            self.out("trajectory", self.read_arrays(RELAX_TRAJECTORY_FILE, {"energies": "eV", "fmax": "eV/Angstrom"}))
        if results.get("not_converged"):
            return self.exit_codes.ERROR_NOT_CONVERGED.format(
                message=self.runner_message or f"frames {results['not_converged']}"
            )
        return None
