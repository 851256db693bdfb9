"""Parser of ``reactmlip.physics``: physics.json -> Dict ``metrics``, physics.npz -> ArrayData ``curves`` and ``traces``."""

from __future__ import annotations

import io

import numpy as np
from aiida import orm

from aiida_reactmlip.parsers.base import RunnerParser
from aiida_reactmlip.runner.contract import PHYSICS_ARRAYS_FILE, PHYSICS_RESULTS_FILE

CURVE_UNITS = {"distances": "Angstrom", "energies": "eV", "forces": "eV/Angstrom", "fd_forces": "eV/Angstrom"}
TRACE_UNITS = {
    "times_ps": "ps",
    "etot": "eV",
    "epot": "eV",
    "ekin": "eV",
    "temperature": "K",
    "target_temperature": "K",
    "min_distance": "Angstrom",
    "n_fragments": "1",
}


class PhysicsParser(RunnerParser):
    """Store the metrics, the diatomic curves and the MD traces; ``ERROR_INCONSISTENT_OUTPUT`` when the arrays
    do not match the metrics (a pair or a run without its arrays)."""

    REQUIRED_FILES = (PHYSICS_RESULTS_FILE, PHYSICS_ARRAYS_FILE)

    def parse_outputs(self, **kwargs):
        results = self.read_json(PHYSICS_RESULTS_FILE)
        content = self.retrieved.base.repository.get_object_content(PHYSICS_ARRAYS_FILE, mode="rb")
        curves, traces = orm.ArrayData(), orm.ArrayData()
        with np.load(io.BytesIO(content)) as npz:
            for key in npz.files:
                (curves if key.startswith("diatomic_") else traces).set_array(
                    key, np.asarray(npz[key], dtype=float)
                )
        expected = [f"diatomic_{pair.replace('-', '_')}_energies" for pair in results.get("diatomic", {})]
        expected += [f"nve_{k}_etot" for k in range(len(results.get("nve", [])))]
        expected += [f"ramp_{k}_temperature" for k in range(len(results.get("ramp", [])))]
        present = set(curves.get_arraynames()) | set(traces.get_arraynames())
        missing = [name for name in expected if name not in present]
        if missing:
            return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                message=f"{PHYSICS_ARRAYS_FILE} lacks {', '.join(missing)}"
            )
        self.out("metrics", orm.Dict(results))
        if curves.get_arraynames():
            curves.base.attributes.set("units", CURVE_UNITS)
            self.out("curves", curves)
        if traces.get_arraynames():
            traces.base.attributes.set("units", TRACE_UNITS)
            self.out("traces", traces)
        return None
