"""Learning curves of fine-tuned MLIPs (pure: metric dicts in, tables out; no AiiDA).

A fine-tuning study evaluates every base model at several label budgets (the number of DFT-labelled
frames it was fine-tuned on; budget 0 is the zero-shot base model) on a held-out test set and,
optionally, on a general reference set (bulk metals, gas molecules, clean surfaces). From the metric
dicts of :func:`aiida_reactmlip.metrics.compare` / ``reactmlip.compute_metrics`` this module builds:

- the **learning curve** of each model: error against the number of labels;
- the **relative gain** against the zero-shot model: ``(zero_shot - value) / zero_shot`` (0.3 = the
  error fell by 30 %, negative = the fine-tune made it worse);
- reactive errors: barrier, reaction-energy and adsorption-energy MAE (from ``compute_metrics``) and,
  for bond scans, the error of the stretch (dissociation) energy (:func:`scan_energy_errors`);
- the **forgetting**: the change of the general-set error against the zero-shot base model,
  ``value - zero_shot`` (positive = the model got worse on the general set) and its relative form
  ``(value - zero_shot) / zero_shot``.

Units follow the metric dicts: energies in eV/atom, forces in eV/Å, reactive errors (barrier,
adsorption energy, reaction energy) in eV.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "CURVE_METRICS",
    "GENERAL_METRICS",
    "REACTIVE_METRICS",
    "curve_values",
    "forgetting",
    "labels_to_reach",
    "learning_curves",
    "reactive_summary",
    "reactive_values",
    "relative_change",
    "relative_gain",
    "scan_energy_errors",
    "table_rows",
]

#: metric key -> (label, unit of the stored value). Reactive metrics exist only where the test set holds
#: an adsorption system or a reaction path; they are left out of a curve where no point has them.
CURVE_METRICS: dict[str, tuple[str, str]] = {
    "energy_mae_per_atom": ("energy MAE", "eV/atom"),
    "energy_rmse_per_atom": ("energy RMSE", "eV/atom"),
    "force_mae": ("force MAE", "eV/Å"),
    "force_rmse": ("force RMSE", "eV/Å"),
    "barrier_mae": ("barrier MAE", "eV"),
    "reaction_energy_mae": ("reaction energy MAE", "eV"),
    "adsorption_energy_mae": ("adsorption energy MAE", "eV"),
    "scan_energy_mae": ("bond-scan stretch energy MAE", "eV"),
}

#: the reactive quantities among :data:`CURVE_METRICS` (eV): what a chemist compares, beside force errors
REACTIVE_METRICS = ("barrier_mae", "reaction_energy_mae", "adsorption_energy_mae", "scan_energy_mae")

#: metrics followed on the general set for forgetting
GENERAL_METRICS = ("energy_mae_per_atom", "force_mae")

#: metrics a relative gain is computed for
GAIN_METRICS = ("energy_mae_per_atom", "force_mae", "barrier_mae", "reaction_energy_mae", "adsorption_energy_mae",
                "scan_energy_mae")


def _number(value: Any) -> float | None:
    """``value`` as a finite float, else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def reactive_summary(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Reactive error summaries of one metrics dict (eV): ``barrier_mae``, ``adsorption_energy_mae`` and
    ``reaction_energy_mae`` (mean absolute reaction-energy error over the reaction paths of ``reactive``).

    A summary is present only where the metrics hold the systems it needs.
    """
    out: dict[str, float] = {}
    for key in ("barrier_mae", "adsorption_energy_mae"):
        value = _number(metrics.get(key))
        if value is not None:
            out[key] = value
    reactions = [
        abs(float(entry["reaction_energy_error_eV"]))
        for entry in (metrics.get("reactive") or {}).values()
        if isinstance(entry, Mapping) and entry.get("kind") == "path" and _number(entry.get("reaction_energy_error_eV")) is not None
    ]
    if reactions:
        out["reaction_energy_mae"] = sum(reactions) / len(reactions)
    return out


def scan_energy_errors(infos: Sequence[Mapping[str, Any]], dft_energies, predicted_energies) -> dict[str, Any]:
    """Bond-scan (dissociation) energies by DFT and by the model, and the model's errors (eV).

    A scan is a group of frames (info ``group``, else ``system``) with role ``scan`` and a ``scan_coordinate``
    (Å), at least two of them. Its stretch energy is E(frame at the largest coordinate) - E(frame of lowest
    DFT energy): the energy to pull the bond from its minimum to the end of the scan, the reactive quantity
    a bond scan measures. ``dft_energies`` and ``predicted_energies``: (F,) total energies (eV) aligned with
    ``infos``.

    Returns ``{"scans": {group: {"n_frames", "dft_stretch_energy_eV", "model_stretch_energy_eV",
    "stretch_energy_error_eV", "profile_mae_eV"}}, "scan_energy_mae": mean |stretch energy error|}``
    (``scan_energy_mae`` only when there is a scan; ``profile_mae_eV``: mean |error| of the energies
    relative to the minimum frame, over the other frames of the scan).
    """
    import numpy as np

    dft = np.asarray(dft_energies, dtype=float)
    model = np.asarray(predicted_energies, dtype=float)
    if dft.shape != model.shape or dft.shape != (len(infos),):
        raise ValueError(f"{len(infos)} frames but {dft.shape} DFT and {model.shape} predicted energies")
    scans: dict[str, list[int]] = {}
    for index, info in enumerate(infos):
        if info.get("role") == "scan" and _number(info.get("scan_coordinate")) is not None:
            key = str(info.get("group") or info.get("system") or "")
            scans.setdefault(key, []).append(index)
    result: dict[str, Any] = {"scans": {}}
    for key, indices in sorted(scans.items()):
        if len(indices) < 2:
            continue
        indices = np.asarray(indices)
        minimum = indices[int(np.argmin(dft[indices]))]
        end = indices[int(np.argmax([float(infos[i]["scan_coordinate"]) for i in indices]))]
        d_stretch, m_stretch = dft[end] - dft[minimum], model[end] - model[minimum]
        others = indices[indices != minimum]
        profile = (model[others] - model[minimum]) - (dft[others] - dft[minimum])
        result["scans"][key] = {
            "n_frames": int(indices.size),
            "dft_stretch_energy_eV": float(d_stretch),
            "model_stretch_energy_eV": float(m_stretch),
            "stretch_energy_error_eV": float(m_stretch - d_stretch),
            "profile_mae_eV": float(np.mean(np.abs(profile))),
        }
    if result["scans"]:
        errors = [abs(entry["stretch_energy_error_eV"]) for entry in result["scans"].values()]
        result["scan_energy_mae"] = float(sum(errors) / len(errors))
    return result


def curve_values(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """The learning-curve metrics (:data:`CURVE_METRICS`) found in one metrics dict; missing ones left out."""
    if not metrics:
        return {}
    out = {key: value for key in CURVE_METRICS if (value := _number(metrics.get(key))) is not None}
    out.update(reactive_summary(metrics))
    return out


def reactive_values(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """The reactive errors (:data:`REACTIVE_METRICS`, eV) found in one metrics dict; missing ones left out."""
    return {key: value for key, value in curve_values(metrics).items() if key in REACTIVE_METRICS}


def relative_gain(zero_shot: float | None, value: float | None) -> float | None:
    """Fractional error reduction against the zero-shot error: ``(zero_shot - value) / zero_shot``.

    0.3 means the error fell by 30 %; negative values mean the fine-tuned model is worse. None when either
    value is missing or the zero-shot error is 0 (nothing to reduce).
    """
    zero_shot, value = _number(zero_shot), _number(value)
    if zero_shot is None or value is None or zero_shot == 0.0:
        return None
    return (zero_shot - value) / zero_shot


def relative_change(reference: float | None, value: float | None) -> float | None:
    """``(value - reference) / reference``: the relative increase of an error (None if undefined)."""
    reference, value = _number(reference), _number(value)
    if reference is None or value is None or reference == 0.0:
        return None
    return (value - reference) / reference


def forgetting(zero_shot_general: Mapping[str, Any] | None, general: Mapping[str, Any] | None) -> dict[str, float]:
    """Forgetting on the general set: for each metric of :data:`GENERAL_METRICS` found in both dicts,
    ``<metric>_change`` (fine-tuned minus zero-shot, same unit as the metric; positive = worse) and
    ``<metric>_relative_change`` (that change divided by the zero-shot value)."""
    if not zero_shot_general or not general:
        return {}
    out: dict[str, float] = {}
    for key in GENERAL_METRICS:
        base, value = _number(zero_shot_general.get(key)), _number(general.get(key))
        if base is None or value is None:
            continue
        out[f"{key}_change"] = value - base
        change = relative_change(base, value)
        if change is not None:
            out[f"{key}_relative_change"] = change
    return out


def labels_to_reach(budgets: Sequence[int], values: Sequence[float | None], target: float) -> int | None:
    """The smallest budget whose error is at most ``target`` (same unit as ``values``), None if none is."""
    reached = [int(b) for b, v in zip(budgets, values) if _number(v) is not None and float(v) <= target]
    return min(reached) if reached else None


def _check_points(points: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    points = list(points)
    seen = set()
    for point in points:
        for key in ("model", "budget"):
            if key not in point:
                raise ValueError(f"a learning-curve point needs {key!r}: got keys {sorted(point)}")
        budget = point["budget"]
        if isinstance(budget, bool) or int(budget) != budget or budget < 0:
            raise ValueError(f"budget must be a whole number >= 0, got {budget!r} (model {point['model']!r})")
        pair = (str(point["model"]), int(budget))
        if pair in seen:
            raise ValueError(f"two points for model {pair[0]!r} at budget {pair[1]}")
        seen.add(pair)
    return points


def learning_curves(points: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Learning curves, gains and forgetting of every model from per-(model, budget) metrics.

    ``points``: one mapping per (model, budget) with ``model`` (key), ``budget`` (number of DFT labels;
    0 = the zero-shot base model), ``test`` (metrics dict on the held-out test set), optionally
    ``general`` (metrics dict on the general set), ``family``, ``model_name`` and any ``*_uuid`` entries
    (kept in the rows, for provenance).

    Returns ``{"budgets": all budgets, "metrics": curve metric keys present, "models": {model: {"family",
    "model_name", "budgets", "test": {metric: [value per budget]}, "general": {...}, "gain": {metric:
    [relative gain per budget]}, "forgetting": {<metric>_change: [...], <metric>_relative_change: [...]}}},
    "rows": one flat dict per point (see :func:`table_rows`)}``. Lists follow ``budgets`` of that model
    (ascending); a missing value is None. Gains and forgetting need the model's budget-0 point; without it
    they are None.
    """
    points = _check_points(points)
    by_model: dict[str, dict[int, Mapping[str, Any]]] = {}
    for point in points:
        by_model.setdefault(str(point["model"]), {})[int(point["budget"])] = point
    present = set()
    for point in points:
        present.update(curve_values(point.get("test")))
    metric_keys = [key for key in CURVE_METRICS if key in present]
    models: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for model in sorted(by_model):
        curve = by_model[model]
        budgets = sorted(curve)
        zero = curve.get(0)
        zero_test = curve_values(zero.get("test")) if zero else {}
        zero_general = curve_values(zero.get("general")) if zero else {}
        first = curve[budgets[0]]
        entry: dict[str, Any] = {
            "family": first.get("family"),
            "model_name": first.get("model_name"),
            "budgets": budgets,
            "test": {key: [] for key in metric_keys},
            "general": {key: [] for key in GENERAL_METRICS},
            "gain": {key: [] for key in GAIN_METRICS if key in metric_keys},
            "forgetting": {f"{key}_{kind}": [] for key in GENERAL_METRICS for kind in ("change", "relative_change")},
        }
        for budget in budgets:
            point = curve[budget]
            test = curve_values(point.get("test"))
            general = curve_values(point.get("general"))
            lost = forgetting(zero_general, general) if zero else {}
            for key in metric_keys:
                entry["test"][key].append(test.get(key))
            for key in GENERAL_METRICS:
                entry["general"][key].append(general.get(key))
            for key in entry["gain"]:
                entry["gain"][key].append(relative_gain(zero_test.get(key), test.get(key)) if zero else None)
            for key in entry["forgetting"]:
                entry["forgetting"][key].append(lost.get(key))
            row: dict[str, Any] = {
                "model": model,
                "family": point.get("family"),
                "model_name": point.get("model_name"),
                "budget": budget,
                **{key: test.get(key) for key in metric_keys},
                **{f"{key}_gain": entry["gain"][key][-1] for key in entry["gain"]},
                **{f"general_{key}": general.get(key) for key in GENERAL_METRICS},
                **{f"forgetting_{key}": entry["forgetting"][key][-1] for key in entry["forgetting"]},
            }
            row.update({key: value for key, value in point.items() if key.endswith("_uuid")})
            rows.append(row)
        if not any(v is not None for values in entry["general"].values() for v in values):
            entry["general"], entry["forgetting"] = {}, {}
        models[model] = entry
    return {
        "budgets": sorted({int(point["budget"]) for point in points}),
        "metrics": metric_keys,
        "models": models,
        "rows": rows,
    }


def table_rows(curves: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The flat rows of :func:`learning_curves`: model, family, model_name, budget, each curve metric,
    ``<metric>_gain``, ``general_<metric>`` and ``forgetting_<metric>_change`` / ``_relative_change``."""
    return [dict(row) for row in curves.get("rows", [])]
