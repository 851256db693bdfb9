"""``reactmlip.physics``: physics-aware checks of one MLIP, beside its errors against DFT, in one job.

Diatomic curves of a study's element pairs, NVE energy conservation, a heating ramp to the breaking point and
the sign of a library reaction's energy (:mod:`aiida_reactmlip.physics`); the runner side is
:mod:`aiida_reactmlip.runner.physics`. Settings and their defaults:
:data:`aiida_reactmlip.runner.contract.PHYSICS_SETTINGS`; :func:`aiida_reactmlip.physics.default_plan` makes
the structures and settings of the default checks for a set of elements.
"""

from __future__ import annotations

from aiida import orm

from aiida_reactmlip.calculations.base import (
    ModelRunnerCalculation,
    check_model_covers,
    settings_input,
    structures_frames,
)
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.frames import Frames
from aiida_reactmlip.runner import contract

#: Settings with defaults (:data:`aiida_reactmlip.runner.contract.PHYSICS_SETTINGS`).
DEFAULT_SETTINGS = contract.PHYSICS_SETTINGS

#: Leaderboard fields (``reactmlip.benchmark``) taken from the ``summary`` of the ``metrics`` output.
LEADERBOARD_FIELDS = {
    "physics_repulsive_pairs": "diatomic_repulsive",
    "physics_pairs": "diatomic_pairs",
    "physics_single_well_pairs": "diatomic_single_well",
    "physics_max_force_energy_dev": "diatomic_max_force_energy_dev",
    "physics_nve_max_abs_drift": "nve_max_abs_drift",
    "physics_nve_max_spread": "nve_max_spread",
    "physics_nve_bonds_broken": "nve_bonds_broken",
    "physics_ramp_min_t_reached": "ramp_min_t_reached",
    "physics_reaction_sign_agrees": "reaction_sign_agrees",
    "physics_reaction_with_dft": "reaction_with_dft",
    "physics_reaction_max_abs_error": "reaction_max_abs_error",
}


def physics_problem(models, settings, structures=None) -> str | None:
    """What ``reactmlip.physics`` refuses for any of ``models`` ({key: MlipModelData}) with ``settings`` (Dict)
    and ``structures``, named with the model's key; None when every model can run the checks."""
    for key, model in models.items():
        inputs = {"model": model, "settings": settings}
        if structures is not None:
            inputs["structures"] = structures
        message = PhysicsCheckCalculation.validate_inputs(inputs)
        if message:
            return f"physics_settings ({key}): {message}"
    return None


class PhysicsCheckCalculation(ModelRunnerCalculation):
    """Physics-aware checks of ``model``: the ``settings`` say which (``elements`` for the diatomic curves;
    ``nve``, ``ramp`` and ``reactions`` entries naming frames of ``structures`` by their info ``name``).

    Runs ``reactmlip-runner physics`` on the computer of ``code``. Outputs: ``metrics`` (every number, and a
    ``summary`` row), ``curves`` (the diatomic curves) and ``traces`` (NVE and ramp traces).
    """

    TASK = "physics"
    FRAMES_PORT = "structures"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "structures",
            valid_type=(LabelledDatasetData, orm.StructureData),
            required=False,
            help="Frames the nve/ramp/reactions settings name by info 'name' (labels unused); "
            "not needed for diatomic curves only.",
        )
        settings_input(spec, cls.TASK)
        spec.output(
            "metrics",
            valid_type=orm.Dict,
            help="diatomic {pair: r_min (Å), well_depth (eV), n_inflections, n_force_flips, "
            "short_range_repulsion, force_energy_max_dev (eV/Å), ...}; nve [drift (meV/atom/ps), spread "
            "(meV/atom), bonds broken/formed, ...]; ramp [t_reached (K), reason, ...]; reactions "
            "[reaction_energy, error (eV), sign_agrees]; summary; seconds; model and versions.",
        )
        spec.output(
            "curves",
            valid_type=orm.ArrayData,
            required=False,
            help="diatomic_<A>_<B>_distances (Å), _energies (eV), _forces and _fd_forces (eV/Å).",
        )
        spec.output(
            "traces",
            valid_type=orm.ArrayData,
            required=False,
            help="nve_<k>_times_ps, _etot/_epot/_ekin (eV), _temperature (K); ramp_<k>_times_ps, "
            "_target_temperature/_temperature (K), _epot (eV), _min_distance (Å), _n_fragments.",
        )

    @classmethod
    def validate_inputs(cls, inputs, _=None) -> str | None:
        """The base checks, then: the model covers the diatomic elements, the named frames exist."""
        message = super().validate_inputs(inputs, _)
        if message:
            return message
        settings = contract.check_settings(cls.TASK, cls.raw_settings(inputs))
        model = inputs.get("model")
        if model is not None and settings["elements"]:
            message = check_model_covers(model, settings["elements"], "the physics settings' elements")
            if message:
                return message
        wanted = contract.physics_frame_names(settings)
        frames = inputs.get(cls.FRAMES_PORT)
        if wanted and frames is None:
            return (
                f"reactmlip.physics: settings name frame(s) {', '.join(wanted)} but no structures are given"
            )
        if frames is not None:
            names = [info.get("name") for info in structures_frames(frames).info]
            missing = [n for n in wanted if n not in names]
            if missing:
                return f"reactmlip.physics: no frame named {', '.join(missing)} in structures pk {frames.pk}"
        if not settings["elements"] and not wanted:
            return "reactmlip.physics: nothing to check: give elements or nve/ramp/reactions entries"
        return None

    KEEP_NONE_SETTINGS = ("distances", "fd_step")

    def input_frames(self):
        """The structures the NVE, ramp and reaction entries name; none when only diatomic curves are asked."""
        if self.FRAMES_PORT in self.inputs:
            return structures_frames(self.inputs[self.FRAMES_PORT])
        return Frames.from_atoms([])
