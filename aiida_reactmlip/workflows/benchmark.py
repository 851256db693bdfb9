"""``reactmlip.benchmark``: DFT labels x universal MLIPs -> zero-shot predictions, metrics and a leaderboard.

Outline:

1. DFT: label the structures (``reactmlip.label``) unless a ``dataset`` is given and, when ``dft_neb``
   is given, a climbing-image NEB with neb.x (``reactmlip.dft_neb``), concurrently.
2. MLIP jobs on the runner code, at most ``max_concurrent_jobs`` at a time: per model one
   ``reactmlip.evaluate`` of the dataset (with a DFT NEB one ``reactmlip.evaluate_many`` of the dataset and
   the DFT NEB's converged band, so that the model is loaded once); with ``relax_minima`` one
   ``reactmlip.relax`` of the DFT minima of the dataset
   (:func:`aiida_reactmlip.metrics.reactive.select_minima`); with a DFT NEB one ``reactmlip.neb`` between
   the DFT NEB's end states (same number of images, interpolation and climbing image).
3. Per model: ``metrics.<model>`` (``reactmlip.compute_metrics``: energy, force, stress errors, per
   system, reactive metrics along the dataset's paths and sites), ``stability.<model>``
   (:func:`compute_stability`: RMSD, bonds broken/formed, dissociation, adsorbate left its site, per
   minimum) and ``neb.<model>`` (:func:`compare_neb`: MLIP NEB barrier - DFT NEB barrier, and the
   model's barrier along the DFT NEB band); then the ``leaderboard``.
"""

from __future__ import annotations

import re

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, if_, while_

from aiida_reactmlip.calculations.evaluate import EvaluateCalculation, EvaluateManyCalculation
from aiida_reactmlip.calculations.functions import compute_metrics
from aiida_reactmlip.metrics.by_system import frame_groups
from aiida_reactmlip.calculations.mlip_neb import MlipNebCalculation
from aiida_reactmlip.calculations.physics import PhysicsCheckCalculation, physics_problem
from aiida_reactmlip.calculations.relax import RelaxCalculation
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.frames import Frames
from aiida_reactmlip.runner import contract
from aiida_reactmlip.workflows.label import LabelWorkChain
from aiida_reactmlip.workflows.dft_neb import DftNebWorkChain
from aiida_reactmlip.workflows.benchmark_functions import (  # noqa: F401  (re-exported)
    KINDS,
    LEADERBOARD_COLUMNS,
    NEB_FIELDS,
    STABILITY_FIELDS,
    compare_neb,
    compute_stability,
    dft_neb_datasets,
    fixed_atoms_of_frame,
    leaderboard_rows,
    make_leaderboard,
    minima_frames,
    select_dft_minima,
)

#: Relaxation of the DFT minima with each model: BFGS to 0.05 eV/Å, at most 300 steps.
DEFAULT_RELAX_SETTINGS = {"optimizer": "BFGS", "fmax": 0.05, "max_steps": 300}
#: The model's own NEB between the DFT NEB's end states (the band settings follow the DFT NEB's).
DEFAULT_MLIP_NEB_SETTINGS = {"fmax": 0.05, "max_steps": 300, "optimizer": "FIRE", "relax_endpoints": False}


def link_label(name: str) -> str:
    """A model name as a valid AiiDA link label (``chgnet-0.3.0`` -> ``chgnet_0_3_0``)."""
    label = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    return label if label and not label[0].isdigit() else f"m_{label}"


def _structure_elements(inputs) -> set[str]:
    elements: set[str] = set()
    if "dataset" in inputs:
        elements |= set(inputs["dataset"].base.attributes.get("elements", []))
    structures = inputs.get("label", {}).get("structures", {})
    elements |= {kind.symbol for structure in structures.values() for kind in structure.kinds}
    neb = inputs.get("dft_neb", {})
    for key in ("initial", "final"):
        if key in neb:
            elements |= {kind.symbol for kind in neb[key].kinds}
    if "images" in neb:
        elements |= set(neb["images"].get_step_structure(0).get_symbols_set())
    return elements


def metrics_problem(dataset, settings: dict) -> str | None:
    """Why ``reactmlip.compute_metrics`` could not give a result on ``dataset`` with ``settings``, and what to do;
    None when it can. Checks the settings, that every frame has a DFT energy and forces, and runs the metrics
    once with the DFT labels as predictions (group compositions, ``train_mask``, the elemental fit's span).
    One frame per group is no problem: forces are compared and the energy error is explained, not refused."""
    from aiida_reactmlip.metrics.errors import ENERGY_REFERENCES, NoEnergyComparison, compare

    unknown = sorted(set(settings) - {"energy_reference", "train_mask"})
    if unknown:
        return f"metrics_settings: unknown key(s) {', '.join(unknown)}; known: energy_reference, train_mask"
    reference = settings.get("energy_reference", "relative:min")
    if reference not in ENERGY_REFERENCES:
        return f"metrics_settings: energy_reference {reference!r} is not one of {', '.join(ENERGY_REFERENCES)}"
    frames = dataset.frames
    for index in range(len(frames)):
        start, n = frames.offsets[index], frames.n_atoms[index]
        name = frames.info[index].get("name", index)
        if not np.isfinite(frames.energies[index]):
            return (f"dataset frame {index} ({name}) has no DFT energy: a benchmark compares DFT labels; label it "
                    "first (`reactmlip label`, reactmlip.label) or leave it out of the dataset")
        if not np.isfinite(frames.forces[start : start + n]).all():
            return (f"dataset frame {index} ({name}) has no DFT forces (eV/Å): label it with forces (reactmlip.label "
                    "computes them) or leave it out of the dataset")
    numbers = [frames.numbers[start : start + n] for start, n in zip(frames.offsets, frames.n_atoms)]
    labels = {"energies": frames.energies, "forces": frames.forces}
    try:
        compare(labels, labels, n_atoms=frames.n_atoms, groups=frame_groups(frames), reference=reference,
                numbers=numbers, train_mask=settings.get("train_mask"))
    except NoEnergyComparison:
        return None
    except ValueError as exception:
        hint = ("; give frames of one composition the same `group` (frame info) and frames of another composition "
                "another group") if "mixes compositions" in str(exception) else ""
        return f"the metrics cannot be computed on this dataset with {settings or 'the default settings'}: {exception}{hint}"
    return None


def validate_inputs(inputs, _):
    """Every model must cover every element; either a dataset or structures to label; valid job settings; metrics
    that can be computed on the dataset (:func:`metrics_problem`)."""
    if "dataset" not in inputs and not inputs.get("label", {}).get("structures"):
        return "give either a labelled `dataset` or `label.structures` to label with DFT"
    if "dataset" in inputs and inputs.get("label", {}).get("structures"):
        return ("give either a labelled `dataset` or `label.structures` to label with DFT, not both (the structures "
                "would not be labelled)")
    models = inputs.get("models", {})
    if not models:
        return "no models given: pass at least one MlipModelData in the `models` namespace"
    elements = _structure_elements(inputs)
    for key, model in models.items():
        missing = model.covers(sorted(elements))
        if missing:
            return f"model {model.model_name} ({key}) does not cover element(s) {', '.join(missing)}"
    if "relax_settings" in inputs:
        settings = inputs["relax_settings"].get_dict()
        if "fixed_atoms" in settings:
            return ("relax_settings: fixed_atoms cannot be given; the atoms kept fixed come from each frame's "
                    "info (`fixed_atoms`, or the bottom `fixed_layers` of a slab)")
        try:
            contract.check_settings("relax", settings)
        except ValueError as exc:
            return f"relax_settings: {exc}"
    if "mlip_neb_settings" in inputs:
        try:
            contract.check_settings("neb", inputs["mlip_neb_settings"].get_dict())
        except ValueError as exc:
            return f"mlip_neb_settings: {exc}"
    if "evaluate_settings" in inputs:
        try:
            contract.check_settings("evaluate", inputs["evaluate_settings"].get_dict())
        except ValueError as exc:
            return f"evaluate_settings: {exc}"
    if "physics_settings" in inputs:
        message = physics_problem(inputs["models"], inputs["physics_settings"], inputs.get("physics_structures"))
        if message:
            return message
    concurrent = inputs.get("max_concurrent_jobs")
    if concurrent is not None and concurrent.value < 1:
        return f"max_concurrent_jobs must be >= 1, got {concurrent.value}"
    settings = inputs["metrics_settings"].get_dict() if "metrics_settings" in inputs else {}
    if "dataset" in inputs:
        return metrics_problem(inputs["dataset"], settings)
    probe = metrics_problem(_empty_probe(), settings)  # the settings alone, before the labels exist
    return probe if probe and probe.startswith("metrics_settings") else None


def _empty_probe():
    """A two-frame H2 dataset: lets :func:`metrics_problem` check settings before any label exists."""
    frames = Frames(numbers=[1, 1, 1, 1], positions=[[0, 0, 0], [0, 0, 0.7], [0, 0, 0], [0, 0, 0.8]],
                    cells=[np.eye(3) * 8] * 2, pbc=[[True] * 3] * 2, n_atoms=[2, 2], energies=[0.0, 0.1],
                    forces=np.zeros((4, 3)), info=[{}, {}])
    return LabelledDatasetData(frames=frames)


class BenchmarkWorkChain(WorkChain):
    """Zero-shot benchmark: label configurations with DFT (or take a dataset), evaluate every model, compare.

    Optionally also relaxes the DFT minima with every model (structural stability) and runs every
    model's own NEB against a DFT NEB (barrier error).
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(LabelWorkChain, namespace="label", namespace_options={"required": False, "populate_defaults": False})
        spec.expose_inputs(DftNebWorkChain, namespace="dft_neb",
                           namespace_options={"required": False, "populate_defaults": False,
                                              "help": "A climbing-image NEB with neb.x; every model then runs its own "
                                                      "NEB between the same end states."})
        spec.input("dataset", valid_type=LabelledDatasetData, required=False,
                   help="An existing labelled dataset; if given, no DFT is run.")
        spec.input_namespace("models", valid_type=MlipModelData, dynamic=True, help="Models to benchmark.")
        spec.input("runner_code", valid_type=orm.AbstractCode, help="Code of reactmlip-runner.")
        spec.input("evaluate_settings", valid_type=orm.Dict, required=False, help="Settings for reactmlip.evaluate.")
        spec.input("metrics_settings", valid_type=orm.Dict, default=lambda: orm.Dict({"energy_reference": "relative:min"}),
                   help="Energy reference: relative:min | relative:mean | elemental_fit.")
        spec.input("relax_minima", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="Relax the DFT minima of the dataset with every model (reactmlip.relax) and report their "
                   "structural stability: RMSD, bonds broken/formed, adsorbate left its site.")
        spec.input("relax_settings", valid_type=orm.Dict, required=False,
                   help=f"reactmlip.relax settings for the minima (default {DEFAULT_RELAX_SETTINGS}); fixed atoms "
                   "come from each frame (info fixed_atoms, or a slab's fixed_layers).")
        spec.input("mlip_neb_settings", valid_type=orm.Dict, required=False,
                   help=f"reactmlip.neb settings of the models' NEB (default {DEFAULT_MLIP_NEB_SETTINGS}; images, "
                   "interpolation and climbing image follow the DFT NEB).")
        spec.input("max_concurrent_jobs", valid_type=orm.Int, default=lambda: orm.Int(3),
                   help="MLIP jobs (evaluate, relax, neb) running at the same time.")
        spec.input("physics_settings", valid_type=orm.Dict, required=False,
                   help="reactmlip.physics settings: every model also goes through the physics-aware checks "
                   "(diatomic curves, NVE drift, heating ramp, reaction sign; docs/physics.md).")
        spec.input("physics_structures", valid_type=LabelledDatasetData, required=False,
                   help="The frames physics_settings name (aiida_reactmlip.physics.default_plan makes both).")
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.run_dft,
            cls.inspect_dft,
            cls.queue_mlip_jobs,
            while_(cls.mlip_jobs_left)(cls.run_mlip_jobs),
            cls.inspect_evaluations,
            if_(cls.has_minima)(cls.compute_stabilities),
            if_(cls.has_neb)(cls.compare_nebs),
            if_(cls.has_physics)(cls.collect_physics),
            cls.compute_results,
        )
        spec.output("dataset", valid_type=LabelledDatasetData)
        spec.output_namespace("predictions", valid_type=orm.ArrayData, dynamic=True)
        spec.output_namespace("metrics", valid_type=orm.Dict, dynamic=True)
        spec.output("leaderboard", valid_type=orm.Dict)
        spec.output("minima", valid_type=LabelledDatasetData, required=False,
                    help="The DFT minima the models relaxed (with relax_minima).")
        spec.output_namespace("stability", valid_type=orm.Dict, dynamic=True,
                              help="Per model: structural stability of every DFT minimum (compute_stability).")
        spec.output("dft_neb_band", valid_type=LabelledDatasetData, required=False,
                    help="The DFT NEB's converged band with its energies (eV).")
        spec.output_namespace("neb", valid_type=orm.Dict, dynamic=True,
                              help="Per model: its NEB barrier against the DFT NEB's (compare_neb).")
        spec.output_namespace("physics", valid_type=orm.Dict, dynamic=True,
                              help="Per model: the metrics of its physics-aware checks (reactmlip.physics).")
        spec.exit_code(410, "ERROR_LABELLING_FAILED", message="DFT labelling failed: {message}")
        spec.exit_code(420, "ERROR_EVALUATION_FAILED", message="Evaluation failed for model(s): {models}")
        spec.exit_code(430, "ERROR_RELAX_FAILED",
                       message="The relaxation of the DFT minima failed for model(s): {models}; other outputs are stored")
        spec.exit_code(440, "ERROR_DFT_NEB_FAILED",
                       message="The DFT NEB failed ({message}); no NEB barrier error; other outputs are stored")
        spec.exit_code(450, "ERROR_MLIP_NEB_FAILED",
                       message="The NEB failed for model(s): {models}; other outputs are stored")
        spec.exit_code(470, "ERROR_PHYSICS_FAILED",
                       message="The physics-aware checks failed for model(s): {models}; other outputs are stored")
        spec.exit_code(460, "ERROR_METRICS_FAILED",
                       message="The metrics failed for model(s): {models}; their predictions and the other models' "
                       "metrics are stored")

    # -------------------------------------------------------------------------------- DFT

    def run_dft(self):
        """Label the structures (unless a dataset is given) and run the DFT NEB (if asked), concurrently."""
        if "dataset" not in self.inputs:
            inputs = self.exposed_inputs(LabelWorkChain, namespace="label")
            node = self.submit(LabelWorkChain, **inputs)
            self.report(f"labelling {len(inputs['structures'])} configurations with pw.x in LabelWorkChain<{node.pk}>")
            self.to_context(label=node)
        if self.inputs.get("dft_neb"):
            inputs = self.exposed_inputs(DftNebWorkChain, namespace="dft_neb")
            inputs.setdefault("metadata", {})["call_link_label"] = "dft_neb"
            node = self.submit(DftNebWorkChain, **inputs)
            self.report(f"DFT NEB with neb.x in DftNebWorkChain<{node.pk}>")
            self.to_context(dft_neb=node)

    def inspect_dft(self):
        if "label" in self.ctx:
            node = self.ctx.label
            if "dataset" not in node.outputs:
                return self.exit_codes.ERROR_LABELLING_FAILED.format(message=f"LabelWorkChain<{node.pk}> {node.exit_message}")
            if not node.is_finished_ok:
                self.report(f"warning: {node.exit_message}; benchmarking on the labels that exist")
        self.ctx.neb_datasets = None
        if "dft_neb" in self.ctx:
            node = self.ctx.dft_neb
            if node.is_finished_ok and "energy_profile" in node.outputs and "band" in node.outputs:
                system = orm.Str(str(self.inputs.dft_neb.get("initial", node.outputs.band).base.extras.get("system", "")))
                self.ctx.neb_datasets = dft_neb_datasets(node.outputs.band, node.outputs.energy_profile, system,
                                                         metadata={"call_link_label": "dft_neb_datasets"})
                self.out("dft_neb_band", self.ctx.neb_datasets["band"])
                barrier = node.outputs.barrier.value
                self.report(f"DFT NEB barrier {barrier:.3f} eV; every model runs its own NEB between the same end states")
            else:  # failed, or no barrier (403: the highest image is an end state): an exit code, not a number
                self.ctx.dft_neb_failed = f"DftNebWorkChain<{node.pk}> [{node.exit_status}] {node.exit_message}"
                self.report(f"the DFT NEB gave no barrier: {self.ctx.dft_neb_failed}; no NEB comparison")
        return None

    def _dataset(self):
        return self.inputs.dataset if "dataset" in self.inputs else self.ctx.label.outputs.dataset

    # -------------------------------------------------------------------------------- MLIP jobs

    def queue_mlip_jobs(self):
        """Queue every MLIP job: evaluations first, then relaxations of the minima, then the NEB jobs."""
        dataset = self._dataset()
        models = sorted(self.inputs.models)
        queue = [("evaluate", key) for key in models]
        self.ctx.minima = None
        if self.inputs.relax_minima.value:
            indices, _ = minima_frames(dataset.frames)
            if indices:
                self.ctx.minima = select_dft_minima(dataset, metadata={"call_link_label": "select_dft_minima"})
                self.out("minima", self.ctx.minima)
                names = [info.get("name", str(i)) for i, info in zip(indices, self.ctx.minima.frame_info)]
                self.report(f"relaxing {len(indices)} DFT minima with every model: {', '.join(names)}")
                queue += [("relax", key) for key in models]
            else:
                self.report("relax_minima: the dataset has no DFT minimum (no finite energy); nothing to relax")
        if self.ctx.neb_datasets is not None:
            queue += [("neb", key) for key in models]
        if "physics_settings" in self.inputs:
            queue += [("physics", key) for key in models]
        self.ctx.queue = queue

    def mlip_jobs_left(self):
        return bool(self.ctx.queue)

    def _submit(self, kind: str, key: str):
        model = self.inputs.models[key]
        code = self.inputs.runner_code
        if kind == "evaluate":
            node = self._submit_evaluation(key, model)
        elif kind == "relax":
            settings = {**DEFAULT_RELAX_SETTINGS,
                        **(self.inputs.relax_settings.get_dict() if "relax_settings" in self.inputs else {})}
            node = self.submit(RelaxCalculation, code=code, model=model, structures=self.ctx.minima,
                               settings=orm.Dict(settings), metadata={"call_link_label": f"relax_{key}"})
            self.report(f"relaxing the DFT minima with {model.model_name}: <{node.pk}>")
        elif kind == "neb":
            node = self.submit(MlipNebCalculation, code=code, model=model, images=self.ctx.neb_datasets["end_states"],
                               settings=orm.Dict(self._mlip_neb_settings()), metadata={"call_link_label": f"neb_{key}"})
            self.report(f"NEB with {model.model_name} between the DFT NEB's end states: <{node.pk}>")
        else:  # physics
            inputs = {"code": code, "model": model, "settings": self.inputs.physics_settings,
                      "metadata": {"call_link_label": f"physics_{key}"}}
            if "physics_structures" in self.inputs:
                inputs["structures"] = self.inputs.physics_structures
            node = self.submit(PhysicsCheckCalculation, **inputs)
            self.report(f"physics-aware checks of {model.model_name}: <{node.pk}>")
        return node

    def _submit_evaluation(self, key: str, model):
        """The model on the dataset: one ``reactmlip.evaluate``; with a DFT NEB band, one ``reactmlip.evaluate_many``
        of the dataset and the band (the model loaded once, one runner start)."""
        dataset = self._dataset()
        inputs = {"code": self.inputs.runner_code, "metadata": {"call_link_label": f"evaluate_{key}"}}
        if "evaluate_settings" in self.inputs:
            inputs["settings"] = self.inputs.evaluate_settings
        if self.ctx.neb_datasets is None:
            node = self.submit(EvaluateCalculation, model=model, dataset=dataset, **inputs)
            what = f"{dataset.base.attributes.get('n_frames')} frames"
        else:
            band = self.ctx.neb_datasets["band"]
            node = self.submit(EvaluateManyCalculation, models={EvaluateManyCalculation.ONE_MODEL_KEY: model},
                               datasets={"dataset": dataset, "dft_band": band}, **inputs)
            what = (f"{dataset.base.attributes.get('n_frames')} frames and the {band.base.attributes.get('n_frames')} "
                    "images of the DFT NEB band")
        self.report(f"evaluating {model.model_name} on {what}: {node.process_label}<{node.pk}>")
        return node

    def _predictions(self, key: str, frames: str = "dataset") -> orm.ArrayData:
        """Model ``key``'s predictions on the dataset (``frames="dataset"``) or on the DFT NEB band (``"dft_band"``)."""
        node = self.ctx[f"job_evaluate_{key}"]
        if node.process_class is EvaluateManyCalculation:
            return node.outputs.predictions[EvaluateManyCalculation.ONE_MODEL_KEY][frames]
        if frames != "dataset":
            raise KeyError(f"{node.process_label}<{node.pk}> evaluated the dataset only, not {frames!r}")
        return node.outputs.predictions

    def _mlip_neb_settings(self) -> dict:
        """The models' NEB like the DFT one: images, climbing image, interpolation, fixed atoms, and the end
        states optimised (by each model) when neb.x optimised them; ``mlip_neb_settings`` on top."""
        from aiida_reactmlip.workflows.dft_neb import band_fixed_atoms

        node = self.ctx.dft_neb
        n_images = self.ctx.neb_datasets["band"].base.attributes.get("n_frames")
        first = node.inputs.initial if "initial" in node.inputs else node.inputs.images.get_step_structure(0)
        fixed = band_fixed_atoms(first, node.inputs.fixed_atoms if "fixed_atoms" in node.inputs else None)
        settings = {**DEFAULT_MLIP_NEB_SETTINGS, "n_images": int(n_images) - 2,
                    "climb": bool(node.inputs.climbing_image.value),
                    "interpolation": node.inputs.interpolation.value,
                    "relax_endpoints": bool(node.inputs.relax_end_states.value)}
        if fixed:
            settings["fixed_atoms"] = fixed
        if "mlip_neb_settings" in self.inputs:
            settings.update(self.inputs.mlip_neb_settings.get_dict())
        return settings

    def run_mlip_jobs(self):
        """Submit the next jobs of the queue, at most ``max_concurrent_jobs``; wait for them."""
        batch, self.ctx.queue = (self.ctx.queue[: self.inputs.max_concurrent_jobs.value],
                                 self.ctx.queue[self.inputs.max_concurrent_jobs.value :])
        return ToContext(**{f"job_{kind}_{key}": self._submit(kind, key) for kind, key in batch})

    def inspect_evaluations(self):
        failed = [key for key in self.inputs.models if not self.ctx[f"job_evaluate_{key}"].is_finished_ok]
        if failed:
            details = ", ".join(f"{key} ({self.ctx[f'job_evaluate_{key}'].exit_message})" for key in failed)
            return self.exit_codes.ERROR_EVALUATION_FAILED.format(models=details)
        return None

    # -------------------------------------------------------------------------------- reactive results

    def has_minima(self):
        return self.ctx.minima is not None

    def compute_stabilities(self):
        self.ctx.stability, failed = {}, []
        for key in sorted(self.inputs.models):
            node = self.ctx[f"job_relax_{key}"]
            if "relaxed" not in node.outputs:
                failed.append(f"{key} ({node.exit_message})")
                continue
            if not node.is_finished_ok:
                self.report(f"warning: RelaxCalculation<{node.pk}> {node.exit_message}; its stability is flagged "
                            "not converged")
            self.ctx.stability[key] = compute_stability(
                self.ctx.minima, node.outputs.relaxed, self._predictions(key),
                metadata={"call_link_label": f"stability_{key}"},
            )
        if failed:
            self.ctx.relax_failed = ", ".join(failed)

    def has_neb(self):
        return self.ctx.neb_datasets is not None

    def compare_nebs(self):
        self.ctx.neb, failed = {}, []
        profile = self.ctx.dft_neb.outputs.energy_profile
        for key in sorted(self.inputs.models):
            neb = self.ctx[f"job_neb_{key}"]
            if "profile" not in neb.outputs:
                failed.append(f"{key} ({neb.exit_message})")
                continue
            if not neb.is_finished_ok:
                self.report(f"warning: MlipNebCalculation<{neb.pk}> {neb.exit_message}; compared unconverged")
            self.ctx.neb[key] = compare_neb(profile, neb.outputs.profile, self._predictions(key, "dft_band"),
                                            metadata={"call_link_label": f"compare_neb_{key}"})
        if failed:
            self.ctx.mlip_neb_failed = ", ".join(failed)

    def has_physics(self):
        return "physics_settings" in self.inputs

    def collect_physics(self):
        """Each model's physics metrics (the CalcJob's ``metrics`` output), for the outputs and the leaderboard."""
        jobs = {key: self.ctx[f"job_physics_{key}"] for key in sorted(self.inputs.models)}
        self.ctx.physics = {key: node.outputs.metrics for key, node in jobs.items() if node.is_finished_ok}
        failed = [f"{key} (<{node.pk}> {node.exit_message})" for key, node in jobs.items() if not node.is_finished_ok]
        if failed:
            self.ctx.physics_failed = ", ".join(failed)

    def compute_results(self):
        dataset = self._dataset()
        self.out("dataset", dataset)
        nodes = {}
        metrics_failed = []
        for key, model in sorted(self.inputs.models.items()):
            predictions = self._predictions(key)
            self.out(f"predictions.{key}", predictions)
            extra = {kind: self.ctx[kind][key] for kind in ("stability", "neb", "physics")
                     if key in self.ctx.get(kind, {})}
            for kind, node in extra.items():
                self.out(f"{kind}.{key}", node)
            try:
                metrics = compute_metrics(dataset, predictions, self.inputs.metrics_settings, model)
            except Exception as exception:  # noqa: BLE001  (the finished MLIP jobs are kept, the failure named)
                self.report(f"metrics of {key} failed: {type(exception).__name__}: {exception}")
                metrics_failed.append(f"{key} ({type(exception).__name__}: {exception})")
                continue
            self.out(f"metrics.{key}", metrics)
            nodes[f"metrics_{key}"] = metrics
            nodes.update({f"{kind}_{key}": node for kind, node in extra.items()})
        self.out("leaderboard", make_leaderboard(**nodes))
        if metrics_failed:
            return self.exit_codes.ERROR_METRICS_FAILED.format(models="; ".join(metrics_failed))
        if "dft_neb_failed" in self.ctx:
            return self.exit_codes.ERROR_DFT_NEB_FAILED.format(message=self.ctx.dft_neb_failed)
        if "relax_failed" in self.ctx:
            return self.exit_codes.ERROR_RELAX_FAILED.format(models=self.ctx.relax_failed)
        if "mlip_neb_failed" in self.ctx:
            return self.exit_codes.ERROR_MLIP_NEB_FAILED.format(models=self.ctx.mlip_neb_failed)
        if "physics_failed" in self.ctx:
            return self.exit_codes.ERROR_PHYSICS_FAILED.format(models=self.ctx.physics_failed)
        return None
