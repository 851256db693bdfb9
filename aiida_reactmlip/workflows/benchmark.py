"""``reactmlip.benchmark``: DFT labels x universal MLIPs -> zero-shot predictions, metrics and a leaderboard.

Outline:

1. DFT: label the structures (``reactmlip.label``) unless a ``dataset`` is given and, when ``dft_neb``
   is given, a climbing-image NEB with neb.x (``reactmlip.dft_neb``), concurrently.
2. MLIP jobs on the runner code, at most ``max_concurrent_jobs`` at a time: per model one
   ``reactmlip.evaluate`` of the dataset; with ``relax_minima`` one ``reactmlip.relax`` of the DFT minima
   of the dataset (:func:`aiida_reactmlip.metrics.reactive.select_minima`); with a DFT NEB one
   ``reactmlip.neb`` between the DFT NEB's end states (same number of images, interpolation and
   climbing image) and one ``reactmlip.evaluate`` of the DFT NEB's converged band.
3. Per model: ``metrics.<model>`` (``reactmlip.compute_metrics``: energy, force, stress errors, per
   system, reactive metrics along the dataset's paths and sites), ``stability.<model>``
   (:func:`compute_stability`: RMSD, bonds broken/formed, dissociation, adsorbate left its site, per
   minimum) and ``neb.<model>`` (:func:`compare_neb`: MLIP NEB barrier - DFT NEB barrier, and the
   model's barrier along the DFT NEB band); then the ``leaderboard``.
"""

from __future__ import annotations

import json
import re

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction, if_, while_

from aiida_reactmlip.calculations.evaluate import EvaluateCalculation
from aiida_reactmlip.calculations.functions import compute_metrics
from aiida_reactmlip.metrics.by_system import frame_groups
from aiida_reactmlip.calculations.mlip_neb import DEFAULT_SETTINGS as NEB_DEFAULT_SETTINGS
from aiida_reactmlip.calculations.mlip_neb import MlipNebCalculation
from aiida_reactmlip.calculations.relax import DEFAULT_SETTINGS as RELAX_DEFAULT_SETTINGS
from aiida_reactmlip.calculations.relax import RelaxCalculation, validate_settings
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.frames import Frames
from aiida_reactmlip.metrics.reactive import (
    barrier_error,
    neb_barrier_error,
    select_minima,
    stability_changed,
    stability_summary,
    structural_stability,
)
from aiida_reactmlip.workflows.label import LabelWorkChain
from aiida_reactmlip.workflows.dft_neb import DftNebWorkChain

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


def validate_inputs(inputs, _):
    """Every model must cover every element; either a dataset or structures to label; valid job settings."""
    if "dataset" not in inputs and not inputs.get("label", {}).get("structures"):
        return "give either a labelled `dataset` or `label.structures` to label with DFT"
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
        message = validate_settings(settings, RELAX_DEFAULT_SETTINGS, "relax")
        if message:
            return f"relax_settings: {message}"
    if "mlip_neb_settings" in inputs:
        message = validate_settings(inputs["mlip_neb_settings"].get_dict(), NEB_DEFAULT_SETTINGS, "neb")
        if message:
            return f"mlip_neb_settings: {message}"
    concurrent = inputs.get("max_concurrent_jobs")
    if concurrent is not None and concurrent.value < 1:
        return f"max_concurrent_jobs must be >= 1, got {concurrent.value}"
    return None


# ----------------------------------------------------------------------------- pure helpers


def fixed_atoms_of_frame(atoms, info: dict) -> list[int]:
    """Atoms to keep fixed when a model relaxes this DFT frame.

    ``info["fixed_atoms"]`` (a JSON list, as the campaign stores the builders' constraints) if present;
    else, for a slab (``kind`` slab) with ``fixed_layers`` = n, the atoms of its n lowest layers
    (:func:`aiida_reactmlip.systems.surfaces.layers`); else none.
    """
    carried = info.get("fixed_atoms")
    if carried is not None:
        value = json.loads(carried) if isinstance(carried, str) else carried
        return sorted(int(i) for i in value)
    n_layers = int(info.get("fixed_layers", 0) or 0)
    if n_layers <= 0 or info.get("kind") != "slab":
        return []
    from aiida_reactmlip.systems.surfaces import layers

    found = layers(atoms)  # top first
    return sorted(int(i) for layer in found[-n_layers:] for i in layer)


def minima_frames(frames: Frames) -> tuple[list[int], Frames]:
    """(dataset indices, frames) of the DFT minima to relax; each frame's info gets ``dataset_index`` and
    ``fixed_atoms`` (JSON, see :func:`fixed_atoms_of_frame`)."""
    indices = select_minima(frames.info, frames.energies, frame_groups(frames))
    subset = frames.subset(indices)
    atoms_list = subset.to_atoms()
    for k, index in enumerate(indices):
        info = subset.info[k]
        fixed = fixed_atoms_of_frame(atoms_list[k], info)
        info["dataset_index"] = int(index)
        if fixed:
            info["fixed_atoms"] = json.dumps(fixed)
        else:
            info.pop("fixed_atoms", None)
    return indices, subset


# ----------------------------------------------------------------------------- calcfunctions


@calcfunction
def select_dft_minima(dataset: LabelledDatasetData) -> LabelledDatasetData:
    """The DFT minima of ``dataset`` (flagged, end states, else the lowest energy of each group) with their labels."""
    _, subset = minima_frames(dataset.frames)
    return LabelledDatasetData(frames=subset)


@calcfunction
def compute_stability(minima: LabelledDatasetData, relaxed: LabelledDatasetData,
                      predictions: orm.ArrayData | None = None) -> orm.Dict:
    """Structural stability of every DFT minimum relaxed by the model (RMSD in Å, bonds, sites).

    Per minimum (``minima``, in order): :func:`~aiida_reactmlip.metrics.reactive.structural_stability` of the
    DFT structure against the model's relaxation, plus ``converged``, ``steps`` and, when the model's
    ``predictions`` on the dataset are given, ``relaxation_energy_eV`` = E_model(relaxed) -
    E_model(DFT minimum) (eV, <= 0: how far down the model slides away from the DFT geometry).
    Summaries (:func:`~aiida_reactmlip.metrics.reactive.stability_summary`) for all minima and per system.
    """
    reference, moved = minima.to_atoms(), relaxed.to_atoms()
    if len(reference) != len(moved):
        raise ValueError(f"{len(reference)} minima but {len(moved)} relaxed frames")
    energies = predictions.get_array("energies") if predictions is not None else None
    frames, by_system = [], {}
    for k, (ref, new) in enumerate(zip(reference, moved)):
        info, new_info = dict(ref.info), dict(new.info)
        result = structural_stability(ref, new)
        result.update({
            "name": str(info.get("name", f"frame {k}")),
            "system": str(info.get("system", "")),
            "role": info.get("role"),
            "site": info.get("site"),
            "dataset_index": info.get("dataset_index"),
            "converged": bool(new_info.get("converged", True)),
            "steps": new_info.get("steps"),
            "changed": False,
        })
        result["changed"] = stability_changed(result)
        if energies is not None and info.get("dataset_index") is not None:
            result["relaxation_energy_eV"] = float(new.get_potential_energy() - energies[int(info["dataset_index"])])
        frames.append(result)
        by_system.setdefault(result["system"], []).append(result)
    return orm.Dict({
        "frames": frames,
        "summary": stability_summary(frames),
        "per_system": {system: stability_summary(results) for system, results in by_system.items()},
        "changed": [r["name"] for r in frames if r["changed"]],
        "definition": "DFT minima relaxed with the model (fixed atoms kept fixed); RMSD over all atoms after "
                      "removing the rigid translation; bonds by 1.25 x covalent radii with hysteresis",
        "model_name": relaxed.frame_info[0].get("model_name") if len(moved) else None,
    })


@calcfunction
def dft_neb_datasets(band: orm.TrajectoryData, energy_profile: orm.ArrayData, system: orm.Str) -> dict:
    """The DFT NEB's converged band as datasets: ``band`` (every image with its DFT energy in eV; forces
    not labelled) and ``end_states`` (its first and last image) for the model's own NEB."""
    energies = np.asarray(energy_profile.get_array("energies"), dtype=float)
    if len(energies) != band.numsteps:
        raise ValueError(f"the energy profile has {len(energies)} images, the band {band.numsteps}")
    atoms_list = []
    for k in range(band.numsteps):
        atoms = band.get_step_structure(k).get_ase()
        role = "initial" if k == 0 else "final" if k == band.numsteps - 1 else "image"
        atoms.info = {"system": system.value, "name": f"dft-neb-{k}", "role": role, "image_index": k,
                      "origin": "dft_neb", "energy": float(energies[k])}
        atoms_list.append(atoms)
    frames = Frames.from_atoms(atoms_list)
    return {"band": LabelledDatasetData(frames=frames),
            "end_states": LabelledDatasetData(frames=frames.subset([0, len(frames) - 1]))}


@calcfunction
def compare_neb(dft_profile: orm.ArrayData, mlip_profile: orm.Dict, band_predictions: orm.ArrayData) -> orm.Dict:
    """Barrier of the model's own NEB against the DFT NEB, and the model's barrier along the DFT NEB band.

    ``neb``: :func:`~aiida_reactmlip.metrics.reactive.neb_barrier_error` (MLIP NEB band vs DFT NEB band,
    each relative to its own initial image); ``dft_band``: :func:`~aiida_reactmlip.metrics.reactive.barrier_error`
    of the model's energies on the DFT band's images. Summary keys: ``dft_neb_barrier_eV``,
    ``mlip_neb_barrier_eV``, ``neb_barrier_error_eV`` (MLIP NEB - DFT NEB), ``dft_band_barrier_error_eV``
    (model along the DFT band - DFT), ``mlip_neb_converged``; relative energy profiles (eV) for plots.
    """
    dft = np.asarray(dft_profile.get_array("energies"), dtype=float)
    profile = mlip_profile.get_dict()
    mlip = np.asarray(profile["energies"], dtype=float)
    on_band = np.asarray(band_predictions.get_array("energies"), dtype=float)
    neb = neb_barrier_error(dft, mlip)
    band = barrier_error(dft, on_band)
    return orm.Dict({
        "neb": neb,
        "dft_band": band,
        "dft_neb_barrier_eV": neb["dft_barrier_eV"],
        "mlip_neb_barrier_eV": neb["model_barrier_eV"],
        "neb_barrier_error_eV": neb["barrier_error_eV"],
        "model_dft_band_barrier_eV": band["model_barrier_eV"],
        "dft_band_barrier_error_eV": band["barrier_error_eV"],
        "mlip_neb_converged": bool(profile.get("converged")),
        "mlip_neb_steps": profile.get("steps"),
        "mlip_neb_fmax": profile.get("fmax"),
        "dft_relative_energies_eV": (dft - dft[0]).tolist(),
        "mlip_neb_relative_energies_eV": (mlip - mlip[0]).tolist(),
        "model_on_dft_band_relative_energies_eV": (on_band - on_band[0]).tolist(),
        "model_name": profile.get("model_name"),
    })


# ----------------------------------------------------------------------------- the WorkChain


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
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.run_dft,
            cls.inspect_dft,
            cls.queue_mlip_jobs,
            while_(cls.mlip_jobs_left)(cls.run_mlip_jobs),
            cls.inspect_evaluations,
            if_(cls.has_minima)(cls.compute_stabilities),
            if_(cls.has_neb)(cls.compare_nebs),
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
        spec.exit_code(410, "ERROR_LABELLING_FAILED", message="DFT labelling failed: {message}")
        spec.exit_code(420, "ERROR_EVALUATION_FAILED", message="Evaluation failed for model(s): {models}")
        spec.exit_code(430, "ERROR_RELAX_FAILED",
                       message="The relaxation of the DFT minima failed for model(s): {models}; other outputs are stored")
        spec.exit_code(440, "ERROR_DFT_NEB_FAILED",
                       message="The DFT NEB failed ({message}); no NEB barrier error; other outputs are stored")
        spec.exit_code(450, "ERROR_MLIP_NEB_FAILED",
                       message="The NEB failed for model(s): {models}; other outputs are stored")

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
            if "energy_profile" in node.outputs and "band" in node.outputs:
                if not node.is_finished_ok:  # 403: no interior maximum, the profile is still output
                    self.report(f"warning: DftNebWorkChain<{node.pk}>: {node.exit_message}; comparing its band anyway")
                system = orm.Str(str(self.inputs.dft_neb.get("initial", node.outputs.band).base.extras.get("system", "")))
                self.ctx.neb_datasets = dft_neb_datasets(node.outputs.band, node.outputs.energy_profile, system,
                                                         metadata={"call_link_label": "dft_neb_datasets"})
                self.out("dft_neb_band", self.ctx.neb_datasets["band"])
                barrier = node.outputs.barrier.value
                self.report(f"DFT NEB barrier {barrier:.3f} eV; every model runs its own NEB between the same end states")
            else:
                self.ctx.dft_neb_failed = f"DftNebWorkChain<{node.pk}> [{node.exit_status}] {node.exit_message}"
                self.report(f"the DFT NEB failed: {self.ctx.dft_neb_failed}; no NEB comparison")
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
            queue += [("neb", key) for key in models] + [("band", key) for key in models]
        self.ctx.queue = queue

    def mlip_jobs_left(self):
        return bool(self.ctx.queue)

    def _submit(self, kind: str, key: str):
        model = self.inputs.models[key]
        code = self.inputs.runner_code
        if kind == "evaluate":
            dataset = self._dataset()
            inputs = {"code": code, "model": model, "dataset": dataset, "metadata": {"call_link_label": f"evaluate_{key}"}}
            if "evaluate_settings" in self.inputs:
                inputs["settings"] = self.inputs.evaluate_settings
            node = self.submit(EvaluateCalculation, **inputs)
            self.report(f"evaluating {model.model_name} on {dataset.base.attributes.get('n_frames')} frames: <{node.pk}>")
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
        else:  # the model's energies along the DFT NEB band
            inputs = {"code": code, "model": model, "dataset": self.ctx.neb_datasets["band"],
                      "metadata": {"call_link_label": f"evaluate_dft_band_{key}"}}
            if "evaluate_settings" in self.inputs:
                inputs["settings"] = self.inputs.evaluate_settings
            node = self.submit(EvaluateCalculation, **inputs)
        return node

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
                self.ctx.minima, node.outputs.relaxed, self.ctx[f"job_evaluate_{key}"].outputs.predictions,
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
            neb, band = self.ctx[f"job_neb_{key}"], self.ctx[f"job_band_{key}"]
            if "profile" not in neb.outputs or not band.is_finished_ok:
                failed.append(f"{key} ({neb.exit_message or band.exit_message})")
                continue
            if not neb.is_finished_ok:
                self.report(f"warning: MlipNebCalculation<{neb.pk}> {neb.exit_message}; compared unconverged")
            self.ctx.neb[key] = compare_neb(profile, neb.outputs.profile, band.outputs.predictions,
                                            metadata={"call_link_label": f"compare_neb_{key}"})
        if failed:
            self.ctx.mlip_neb_failed = ", ".join(failed)

    def compute_results(self):
        dataset = self._dataset()
        self.out("dataset", dataset)
        nodes = {}
        for key, model in sorted(self.inputs.models.items()):
            predictions = self.ctx[f"job_evaluate_{key}"].outputs.predictions
            metrics = compute_metrics(dataset, predictions, self.inputs.metrics_settings, model)
            self.out(f"predictions.{key}", predictions)
            self.out(f"metrics.{key}", metrics)
            nodes[f"metrics_{key}"] = metrics
            if key in self.ctx.get("stability", {}):
                self.out(f"stability.{key}", self.ctx.stability[key])
                nodes[f"stability_{key}"] = self.ctx.stability[key]
            if key in self.ctx.get("neb", {}):
                self.out(f"neb.{key}", self.ctx.neb[key])
                nodes[f"neb_{key}"] = self.ctx.neb[key]
        self.out("leaderboard", make_leaderboard(**nodes))
        if "dft_neb_failed" in self.ctx:
            return self.exit_codes.ERROR_DFT_NEB_FAILED.format(message=self.ctx.dft_neb_failed)
        if "relax_failed" in self.ctx:
            return self.exit_codes.ERROR_RELAX_FAILED.format(models=self.ctx.relax_failed)
        if "mlip_neb_failed" in self.ctx:
            return self.exit_codes.ERROR_MLIP_NEB_FAILED.format(models=self.ctx.mlip_neb_failed)
        return None


LEADERBOARD_COLUMNS = (
    "energy_mae_per_atom",
    "energy_rmse_per_atom",
    "force_mae",
    "force_rmse",
    "force_cosine_similarity",
    "stress_mae",
    "adsorption_energy_mae",
    "barrier_mae",
)

#: Leaderboard fields taken from the stability (``stability_*``) and NEB (``neb_*``) nodes of a model.
STABILITY_FIELDS = {"stability_rmsd_mean": "rmsd_mean_A", "stability_rmsd_max": "rmsd_max_A",
                    "stability_n_minima": "n_minima", "stability_n_changed": "n_changed",
                    "stability_n_left_site": "n_left_site", "stability_n_dissociated": "n_dissociated",
                    "stability_n_not_converged": "n_not_converged"}
NEB_FIELDS = {"neb_barrier_error": "neb_barrier_error_eV", "dft_band_barrier_error": "dft_band_barrier_error_eV",
              "dft_neb_barrier": "dft_neb_barrier_eV", "mlip_neb_barrier": "mlip_neb_barrier_eV",
              "mlip_neb_converged": "mlip_neb_converged"}
KINDS = ("metrics", "stability", "neb")


def leaderboard_rows(nodes: dict[str, dict]) -> list[dict]:
    """Leaderboard rows (pure): ``nodes`` maps ``metrics_<key>``, ``stability_<key>``, ``neb_<key>`` to the
    dicts of a model's nodes (``uuid`` added); rows sorted by force MAE (eV/Å)."""
    by_model: dict[str, dict] = {}
    for name, values in nodes.items():
        kind = next((k for k in KINDS if name.startswith(f"{k}_")), None)
        if kind is None:
            raise ValueError(f"leaderboard input {name!r} must start with one of {', '.join(f'{k}_' for k in KINDS)}")
        by_model.setdefault(name[len(kind) + 1 :], {})[kind] = values
    rows = []
    for key, parts in by_model.items():
        if "metrics" not in parts:
            raise ValueError(f"model {key!r} has no metrics node")
        values = parts["metrics"]
        row = {"key": key, "model": values.get("model_name", key), "model_uuid": values.get("model_uuid"),
               "metrics_uuid": values["uuid"], "energy_reference": values.get("energy_reference")}
        row.update({column: values[column] for column in LEADERBOARD_COLUMNS if column in values})
        if "stability" in parts:
            summary = parts["stability"]["summary"]
            row.update({field: summary[source] for field, source in STABILITY_FIELDS.items()})
            row["stability_uuid"] = parts["stability"]["uuid"]
        if "neb" in parts:
            row.update({field: parts["neb"][source] for field, source in NEB_FIELDS.items()})
            row["neb_uuid"] = parts["neb"]["uuid"]
        rows.append(row)
    rows.sort(key=lambda row: (row.get("force_mae") is None, row.get("force_mae") or 0.0))
    return rows


@calcfunction
def make_leaderboard(**nodes: orm.Dict) -> orm.Dict:
    """Leaderboard of models sorted by force MAE (eV/Å); each row names its model and metrics node.

    Inputs ``metrics_<model key>`` (compute_metrics), optionally ``stability_<model key>`` (compute_stability)
    and ``neb_<model key>`` (compare_neb): their summaries become columns (``stability_rmsd_mean`` Å,
    ``stability_n_changed`` of ``stability_n_minima``, ``neb_barrier_error`` and ``dft_band_barrier_error`` eV).
    """
    rows = leaderboard_rows({name: {**node.get_dict(), "uuid": node.uuid} for name, node in nodes.items()})
    return orm.Dict({"sorted_by": "force_mae", "rows": rows})
