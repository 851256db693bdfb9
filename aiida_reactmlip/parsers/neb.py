"""Parser of ``reactmlip.neb``: band.extxyz -> LabelledDatasetData, profile.json -> Dict."""

from __future__ import annotations

import json

from aiida import orm
from aiida.parsers import Parser

from aiida_reactmlip.calculations.neb import OUTPUT_FILE, RESULTS_FILE
from aiida_reactmlip.parsers.common import RUNNER_EXIT_CODES, runner_status
from aiida_reactmlip.parsers.relax import read_dataset


class MlipNebParser(Parser):
    """Store the final band and its energy profile; exit 401 (after storing) when the band did not converge."""

    def parse(self, **kwargs):
        code, message = runner_status(self)
        if code not in (0, 14):
            return self.exit_codes[RUNNER_EXIT_CODES.get(code, "ERROR_RUNNER_FAILED")].format(message=message)
        names = self.retrieved.base.repository.list_object_names()
        for filename in (OUTPUT_FILE, RESULTS_FILE):
            if filename not in names:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=filename)
        band = read_dataset(self, OUTPUT_FILE, self.node.inputs.model)
        profile = json.loads(self.retrieved.base.repository.get_object_content(RESULTS_FILE))
        if len(band.get_array("n_atoms")) != len(profile["energies"]):
            return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                message=f"{len(band.get_array('n_atoms'))} images but {len(profile['energies'])} energies"
            )
        self.out("band", band)
        self.out("profile", orm.Dict(profile))
        if code == 14 or not profile.get("converged", False):
            return self.exit_codes.ERROR_NOT_CONVERGED.format(message=message or "band not converged")
        return None
