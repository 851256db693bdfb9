"""Parser of ``reactmlip.md``: trajectory.extxyz -> LabelledDatasetData, report.json -> Dict, thermo.npz -> ArrayData."""

from __future__ import annotations

from aiida import orm

from aiida_reactmlip.parsers.base import RunnerParser
from aiida_reactmlip.runner.contract import MD_REPORT_FILE, MD_THERMO_FILE, MD_TRAJECTORY_FILE


class MdParser(RunnerParser):
    """Store the saved MD frames, the report and the per-step thermo arrays.

    ``ERROR_NO_FRAMES_SAVED`` when no frame was saved; ``ERROR_MD_BLEW_UP`` (after storing) when a trajectory
    blew up and the parameters ask ``fail_on_blowup``.
    """

    REQUIRED_FILES = (MD_TRAJECTORY_FILE, MD_REPORT_FILE)

    def parse_outputs(self, **kwargs):
        report = self.read_json(MD_REPORT_FILE)
        if self.has_file(MD_THERMO_FILE):
            self.out("thermo", self.read_arrays(MD_THERMO_FILE, {"epot": "eV", "temperature": "K", "fmax": "eV/Angstrom"}))
        self.out("report", orm.Dict(report))
        reasons = "; ".join(
            f"start {s['start']} at step {s['blow_up_step']}: {s['blow_up_reason']}"
            for s in report.get("starts", []) if s.get("blew_up")
        )
        if not report.get("n_frames"):
            return self.exit_codes.ERROR_NO_FRAMES_SAVED.format(message=reasons or "no trajectory reached a saved step")
        trajectory = self.read_dataset(MD_TRAJECTORY_FILE)
        if trajectory.n_frames != report["n_frames"]:
            return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                message=f"{trajectory.n_frames} frames in {MD_TRAJECTORY_FILE}, the report says {report['n_frames']}"
            )
        self.out("trajectory", trajectory)
        parameters = self.node.inputs.parameters.get_dict() if "parameters" in self.node.inputs else {}
        if report.get("blew_up"):
            self.logger.warning(f"MD blew up: {reasons}")
            if parameters.get("fail_on_blowup"):
                return self.exit_codes.ERROR_MD_BLEW_UP.format(message=reasons)
        return None
