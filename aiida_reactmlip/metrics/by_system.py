"""Metrics of a whole labelled dataset, system by system (pure: Frames and numpy in, dicts out).

:func:`frame_groups` gives the group of every frame for relative energies; :func:`system_metrics` the
errors per system and the reactive metrics with their leaderboard summaries.

The frames carry what the system library put in their ``info``: ``system``, ``role`` (reference,
initial, image, final, scan), ``kind`` (slab, molecule, bulk), ``adsorbate`` and ``site`` for adsorbed
configurations, ``image_index`` for path images. From that, each system gets the reactive metrics
that apply to it:

- adsorption (frames with ``adsorbate`` and ``site``, a clean slab and gas references): adsorption
  energies per site by DFT and the model, their errors, and the site-preference order (the gas references
  of ``systems.adsorption.REFERENCE_SCHEMES``, or the frames' ``adsorption_scheme``, a JSON mapping
  molecule -> coefficient that a user's file gets from :mod:`aiida_reactmlip.user_structures`);
- paths (an ``initial`` and a ``final`` frame, optionally ``image`` frames): the model's energy along
  the DFT path, its barrier and reaction-energy errors.
"""

from __future__ import annotations

import json

import numpy as np
from ase.data import chemical_symbols
from ase.formula import Formula

from .errors import compare
from .reactive import adsorption_energy_errors, barrier_error, site_preference


def _formula(numbers) -> str:
    return Formula.from_list([chemical_symbols[int(z)] for z in numbers]).format("hill")


def _frames_by_system(frames) -> dict[str, list[int]]:
    systems: dict[str, list[int]] = {}
    for index, info in enumerate(frames.info):
        systems.setdefault(str(info.get("system", "")), []).append(index)
    return systems


#: Site energy differences (meV) below which DFT gives no site order: no smaller than the DFT precision of the
#: labelling protocol (fast: an estimate; docs/metrics.md "Regression values").
SITE_TIE_MEV = 20.0


def adsorption_metrics(frames, indices: list[int], dft: np.ndarray, model: np.ndarray) -> dict | None:
    """Adsorption-energy errors and site preference of one adsorption system, or None if it is not one."""
    info = frames.info
    sites = [i for i in indices if info[i].get("adsorbate") and info[i].get("site")]
    slabs = [i for i in indices if info[i].get("kind") == "slab" and not info[i].get("adsorbate")
             and info[i].get("role") == "reference"]
    gases = [i for i in indices if info[i].get("kind") == "molecule" and info[i].get("role") == "reference"]
    if not sites or len(slabs) != 1:
        return None
    adsorbates = {info[i]["adsorbate"] for i in sites}
    if len(adsorbates) != 1:
        return None
    adsorbate = adsorbates.pop()
    offsets, n_atoms = frames.offsets, frames.n_atoms
    references = {
        _formula(frames.numbers[offsets[i] : offsets[i] + n_atoms[i]]): i for i in gases
    }
    site_of = {str(info[i]["site"]): i for i in sites}
    schemes = {info[i].get("adsorption_scheme") for i in sites} - {None}  # a user's frames carry their references
    scheme = json.loads(schemes.pop()) if len(schemes) == 1 else None
    result = adsorption_energy_errors(
        {site: dft[i] for site, i in site_of.items()},
        {site: model[i] for site, i in site_of.items()},
        dft[slabs[0]], model[slabs[0]],
        {mol: dft[i] for mol, i in references.items()},
        {mol: model[i] for mol, i in references.items()},
        adsorbate,
        scheme,
    )
    preference = site_preference({s: dft[i] for s, i in site_of.items()}, {s: model[i] for s, i in site_of.items()},
                                 tie_meV=SITE_TIE_MEV)
    return {"kind": "adsorption", **result, **{f"site_{k}": v for k, v in preference.items()}}


def path_metrics(frames, indices: list[int], dft: np.ndarray, model: np.ndarray) -> dict | None:
    """The model's barrier and reaction energy along the DFT path (initial, images, final), or None."""
    info = frames.info
    initial = [i for i in indices if info[i].get("role") == "initial"]
    final = [i for i in indices if info[i].get("role") == "final" and not info[i].get("adsorbate")]
    images = sorted((i for i in indices if info[i].get("role") == "image"),
                    key=lambda i: float(info[i].get("image_index", 0)))
    if len(initial) != 1 or len(final) != 1:
        return None
    path = [initial[0], *images, final[0]]
    result = barrier_error(dft[path], model[path])
    return {"kind": "path", "n_path_frames": len(path), **result}


def reactive_metrics_by_system(frames, predicted_energies) -> dict[str, dict]:
    """Reactive metrics (adsorption, site preference, path barrier) of every system that has them.

    ``predicted_energies``: (F,) model total energies (eV) aligned with ``frames``. Systems with
    neither adsorbed sites nor a path (e.g. a bond scan) are left out: their error is in the energy
    and force metrics.
    """
    dft = np.asarray(frames.energies, dtype=float)
    model = np.asarray(predicted_energies, dtype=float)
    if model.shape != dft.shape:
        raise ValueError(f"predicted energies have shape {model.shape}, the dataset {dft.shape}")
    results = {}
    for system, indices in _frames_by_system(frames).items():
        summary = adsorption_metrics(frames, indices, dft, model) or path_metrics(frames, indices, dft, model)
        if summary is not None:
            results[system] = summary
    return results


def frame_groups(frames) -> list[str]:
    """Group key per frame for relative energies: the ``group`` info if given, else system + formula."""
    groups = []
    for i, info in enumerate(frames.info):
        if info.get("group"):
            groups.append(str(info["group"]))
            continue
        numbers = frames.numbers[frames.offsets[i] : frames.offsets[i] + frames.n_atoms[i]]
        groups.append(f"{info.get('system', '')}:{_formula(numbers)}")
    return groups


def system_metrics(frames, pred: dict, reference: str) -> dict:
    """Metrics per system (``per_system``), reactive metrics (``reactive``) and their leaderboard summaries.

    ``pred``: model ``energies`` (F,) in eV and ``forces`` (sum n_atoms, 3) in eV/Å aligned with ``frames``.
    A system whose metrics cannot be computed (e.g. a single frame, nothing to compare relative
    energies with) gets ``{"error": reason}``: stated, never silently dropped.
    """
    per_system = {}
    for system, indices in _frames_by_system(frames).items():
        subset = frames.subset(indices)
        atom_rows = np.concatenate(
            [np.arange(frames.offsets[i], frames.offsets[i] + frames.n_atoms[i]) for i in indices]
        )
        dft = {"energies": subset.energies, "forces": subset.forces}
        sub_pred = {"energies": np.asarray(pred["energies"])[indices], "forces": np.asarray(pred["forces"])[atom_rows]}
        try:
            per_system[system] = compare(dft, sub_pred, n_atoms=subset.n_atoms, groups=frame_groups(subset),
                                         reference=reference if reference.startswith("relative") else "relative:min")
        except ValueError as exception:
            per_system[system] = {"error": str(exception)}
    reactive = reactive_metrics_by_system(frames, pred["energies"])
    summary: dict = {"per_system": per_system, "reactive": reactive}
    adsorption = [r["adsorption_energy_mae_eV"] for r in reactive.values() if r.get("kind") == "adsorption"]
    barriers = [r["barrier_abs_error_eV"] for r in reactive.values() if r.get("kind") == "path"]
    if adsorption:
        summary["adsorption_energy_mae"] = float(np.mean(adsorption))
        summary["site_order_agrees"] = int(sum(bool(r["site_most_stable_agrees"]) for r in reactive.values()
                                               if r.get("kind") == "adsorption"))
    if barriers:
        summary["barrier_mae"] = float(np.mean(barriers))
    return summary
