"""Parser of ``reactmlip.md``: trajectory.extxyz -> LabelledDatasetData, report.json -> Dict, thermo.npz -> ArrayData."""

from __future__ import annotations

import io
import json

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_reactmlip.calculations.md import OUTPUT_FILE, RESULTS_FILE, THERMO_FILE
from aiida_reactmlip.parsers.common import RUNNER_EXIT_CODES, runner_status
from aiida_reactmlip.parsers.relax import read_dataset


class MdParser(Parser):
    """Store the saved MD frames, the report and the per-step thermo arrays.

    Exit 403 when no frame was saved; 402 (after storing) when a trajectory blew up and the parameters ask
    ``fail_on_blowup``.
    """

    def parse(self, **kwargs):
        code, message = runner_status(self)
        if code != 0:
            return self.exit_codes[RUNNER_EXIT_CODES.get(code, "ERROR_RUNNER_FAILED")].format(message=message)
        names = self.retrieved.base.repository.list_object_names()
        for filename in (OUTPUT_FILE, RESULTS_FILE):
            if filename not in names:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=filename)
        report = json.loads(self.retrieved.base.repository.get_object_content(RESULTS_FILE))
        if THERMO_FILE in names:
            content = self.retrieved.base.repository.get_object_content(THERMO_FILE, mode="rb")
            thermo = orm.ArrayData()
            with np.load(io.BytesIO(content)) as npz:
                for name in npz.files:
                    thermo.set_array(name, np.asarray(npz[name], dtype=float))
            thermo.base.attributes.set("units", {"epot": "eV", "temperature": "K", "fmax": "eV/Angstrom"})
            self.out("thermo", thermo)
        self.out("report", orm.Dict(report))
        reasons = "; ".join(
            f"start {s['start']} at step {s['blow_up_step']}: {s['blow_up_reason']}"
            for s in report.get("starts", []) if s.get("blew_up")
        )
        if not report.get("n_frames"):
            return self.exit_codes.ERROR_NO_FRAMES_SAVED.format(message=reasons or "no trajectory reached a saved step")
        trajectory = read_dataset(self, OUTPUT_FILE, self.node.inputs.model)
        if trajectory.n_frames != report["n_frames"]:
            return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                message=f"{trajectory.n_frames} frames in {OUTPUT_FILE}, the report says {report['n_frames']}"
            )
        self.out("trajectory", trajectory)
        parameters = self.node.inputs.parameters.get_dict() if "parameters" in self.node.inputs else {}
        if report.get("blew_up"):
            self.logger.warning(f"MD blew up: {reasons}")
            if parameters.get("fail_on_blowup"):
                return self.exit_codes.ERROR_MD_BLEW_UP.format(message=reasons)
        return None
