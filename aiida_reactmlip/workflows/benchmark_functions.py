"""Calcfunctions and pure helpers of ``reactmlip.benchmark``: DFT minima for the stability check, the DFT NEB
against each model's NEB, and the leaderboard (rows sorted by force MAE, eV/Å)."""


from __future__ import annotations


import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_reactmlip.metrics.by_system import frame_groups
from aiida_reactmlip.calculations.physics import LEADERBOARD_FIELDS as PHYSICS_FIELDS
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.frames import Frames
from aiida_reactmlip.runner import contract
from aiida_reactmlip.metrics.reactive import (
    barrier_error,
    neb_barrier_error,
    select_minima,
    stability_changed,
    stability_summary,
    structural_stability,
)

#: Relaxation of the DFT minima with each model: BFGS to 0.05 eV/Å, at most 300 steps.


# ----------------------------------------------------------------------------- pure helpers


def fixed_atoms_of_frame(atoms, info: dict) -> list[int]:
    """Atoms to keep fixed when a model relaxes this DFT frame.

    ``info["fixed_atoms"]`` (a JSON list, as the campaign stores the builders' constraints) if present;
    else, for a slab (``kind`` slab) with ``fixed_layers`` = n, the atoms of its n lowest layers
    (:func:`aiida_reactmlip.systems.surfaces.layers`); else none.
    """
    if info.get("fixed_atoms") is not None:
        return contract.fixed_atoms_from_info(info, "frame")
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
            info["fixed_atoms"] = contract.fixed_atoms_info(fixed)
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
KINDS = ("metrics", "stability", "neb", "physics")


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
        if "physics" in parts:
            summary = parts["physics"]["summary"]
            row.update({field: summary.get(source) for field, source in PHYSICS_FIELDS.items()})
            row["physics_uuid"] = parts["physics"]["uuid"]
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
