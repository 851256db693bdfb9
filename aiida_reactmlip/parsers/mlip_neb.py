"""Parser of ``reactmlip.neb`` (the MLIP NEB): band.extxyz -> LabelledDatasetData, profile.json -> Dict."""

from __future__ import annotations

from aiida import orm

from aiida_reactmlip.parsers.base import RunnerParser
from aiida_reactmlip.runner.contract import BAND_FILE, EXIT_NOT_CONVERGED, PROFILE_FILE


class MlipNebParser(RunnerParser):
    """Store the final band and its energy profile; ``ERROR_NOT_CONVERGED`` (after storing) when the band did
    not converge."""

    REQUIRED_FILES = (BAND_FILE, PROFILE_FILE)
    OUTPUTS_DESPITE = (EXIT_NOT_CONVERGED,)

    def parse_outputs(self, **kwargs):
        band = self.read_dataset(BAND_FILE)
        profile = self.read_json(PROFILE_FILE)
        if len(band.get_array("n_atoms")) != len(profile["energies"]):
            return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                message=f"{len(band.get_array('n_atoms'))} images but {len(profile['energies'])} energies"
            )
        self.out("band", band)
        self.out("profile", orm.Dict(profile))
        if not profile.get("converged", False):
            return self.exit_codes.ERROR_NOT_CONVERGED.format(message=self.runner_message or "band not converged")
        return None
