"""The report of a finished ``reactmlip.finetune_study``: learning curves, forgetting, tables and an HTML page.

Pure parts (a learning-curve dict in, PNG/text out): :func:`plot_learning_curves`, :func:`plot_forgetting`,
:func:`plot_training_histories`, :func:`format_table`, :func:`to_markdown`, :func:`to_csv`. The AiiDA part,
:func:`write_finetune_report`, reads a finished WorkChain node and writes the folder.
"""

from __future__ import annotations

import csv
import html
import io
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from aiida_reactmlip.report.page import figures, page, table
from aiida_reactmlip.report.plots import _pyplot, _save

#: (scale from the stored unit: eV, eV/atom, eV/Å or a fraction; format) of a value shown in each unit
_UNIT_FORMATS = {"meV/atom": (1000.0, "{:.2f}"), "meV/Å": (1000.0, "{:.1f}"), "meV": (1000.0, "{:.0f}"),
                 "%": (100.0, "{:+.0f}")}


def _metric(key: str, header: str, unit: str, gain: bool = False) -> list[tuple]:
    """The column of metric ``key`` shown in ``unit`` and, with ``gain``, that of ``<key>_gain`` (%)."""
    columns = [(key, f"{header} ({unit})", *_UNIT_FORMATS[unit])]
    if gain:
        columns.append((f"{key}_gain", f"{header.replace('MAE', 'gain')} (%)", *_UNIT_FORMATS["%"]))
    return columns


#: (row key, header, scale, format) of the learning-curve table
TABLE_COLUMNS = (
    ("model_name", "model", None, "{}"),
    ("budget", "DFT labels", None, "{}"),
    *_metric("energy_mae_per_atom", "E MAE", "meV/atom", gain=True),
    *_metric("force_mae", "F MAE", "meV/Å", gain=True),
    *_metric("barrier_mae", "barrier MAE", "meV"),
    *_metric("reaction_energy_mae", "ΔE_r MAE", "meV"),
    *_metric("adsorption_energy_mae", "E_ads MAE", "meV"),
    *_metric("scan_energy_mae", "scan ΔE MAE", "meV", gain=True),
    *_metric("general_energy_mae_per_atom", "general E MAE", "meV/atom"),
    *_metric("general_force_mae", "general F MAE", "meV/Å"),
    ("forgetting_force_mae_relative_change", "general F change (%)", *_UNIT_FORMATS["%"]),
)
#: columns shown only when some row has a value
OPTIONAL_COLUMNS = {"barrier_mae", "reaction_energy_mae", "adsorption_energy_mae", "scan_energy_mae",
                    "scan_energy_mae_gain", "general_energy_mae_per_atom",
                    "general_force_mae", "forgetting_force_mae_relative_change"}

#: learning-curve panels: (metric keys drawn in the panel, y label, scale to the unit shown)
PANELS = (
    (("energy_mae_per_atom",), "energy MAE (meV/atom)", 1000.0),
    (("force_mae",), "force MAE (meV/Å)", 1000.0),
    (("barrier_mae", "reaction_energy_mae", "adsorption_energy_mae", "scan_energy_mae"), "reactive error MAE (meV)",
     1000.0),
)
_REACTIVE_STYLE = {"barrier_mae": ("-", "barrier"), "reaction_energy_mae": ("--", "reaction energy"),
                   "adsorption_energy_mae": (":", "adsorption energy"),
                   "scan_energy_mae": ("-.", "bond-scan stretch energy")}


def active_columns(rows: list[Mapping[str, Any]]) -> list[tuple]:
    """The table columns to show: optional ones only where some row has a value."""
    return [c for c in TABLE_COLUMNS if c[0] not in OPTIONAL_COLUMNS or any(r.get(c[0]) is not None for r in rows)]


def format_table(rows: list[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of the learning-curve table (meV, meV/atom, meV/Å, %); '-' where missing."""
    columns = active_columns(rows)
    table = []
    for row in rows:
        cells = []
        for key, _, scale, fmt in columns:
            value = row.get(key)
            if key == "model_name" and value is None:
                value = row.get("model")
            if value is None:
                cells.append("-")
                continue
            cells.append(fmt.format(scale * float(value) if scale else value))
        table.append(cells)
    return [c[1] for c in columns], table


def to_markdown(rows: list[Mapping[str, Any]], title: str = "", note: str = "") -> str:
    """The learning-curve table in Markdown (one row per model and budget)."""
    head, cells = format_table(rows)
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in cells)
    if note:
        lines.extend(["", note])
    return "\n".join(lines) + "\n"


def to_csv(rows: list[Mapping[str, Any]]) -> str:
    """The learning-curve rows as CSV, full precision, in the stored units (eV, eV/atom, eV/Å, fractions)."""
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


def _label(curves: Mapping[str, Any], key: str) -> str:
    entry = curves["models"][key]
    name = entry.get("model_name") or key
    family = entry.get("family")
    return f"{name} ({family})" if family and family not in name else name


def _series(entry: Mapping[str, Any], where: str, metric: str, scale: float):
    budgets = np.asarray(entry["budgets"], dtype=float)
    values = entry.get(where, {}).get(metric) or [None] * len(budgets)
    y = np.array([np.nan if v is None else scale * float(v) for v in values])
    keep = np.isfinite(y)
    return budgets[keep], y[keep]


#: a panel whose largest value is this many times its smallest gets a logarithmic y axis
LOG_RATIO = 8.0


def _budget_axis(ax, budgets, values=()) -> None:
    """Budgets on x; y from 0, or logarithmic when the values span more than :data:`LOG_RATIO`."""
    ax.set_xlabel("DFT labels used for fine-tuning (0 = zero-shot)")
    ax.set_xticks(sorted({int(b) for b in budgets}))
    positive = [v for v in values if v > 0]
    if positive and max(positive) > LOG_RATIO * min(positive):
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3, which="both")


def plot_learning_curves(curves: Mapping[str, Any], path: str | pathlib.Path, title: str = "") -> pathlib.Path:
    """Energy MAE (meV/atom), force MAE (meV/Å) and reactive errors (meV) on the test split against the number
    of DFT labels, one line per model (reactive panel: line style per quantity, only when the test set has one).
    A panel whose values span more than a factor :data:`LOG_RATIO` gets a logarithmic y axis."""
    plt = _pyplot()
    metrics = set(curves.get("metrics", []))
    panels = [p for p in PANELS if metrics.intersection(p[0])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), dpi=120, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (keys, ylabel, scale) in zip(axes[0], panels):
        drawn: list[float] = []
        for k, model in enumerate(sorted(curves["models"])):
            entry = curves["models"][model]
            for metric in keys:
                if metric not in metrics:
                    continue
                x, y = _series(entry, "test", metric, scale)
                if not x.size:
                    continue
                style, quantity = _REACTIVE_STYLE.get(metric, ("-", ""))
                label = _label(curves, model) + (f": {quantity}" if len(keys) > 1 else "")
                ax.plot(x, y, marker="o", ls=style, color=colors[k % len(colors)], label=label)
                drawn.extend(y.tolist())
        ax.set_ylabel(ylabel)
        _budget_axis(ax, curves.get("budgets", []), drawn)
        ax.legend(frameon=False, fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_forgetting(curves: Mapping[str, Any], path: str | pathlib.Path, title: str = "") -> pathlib.Path | None:
    """General-set energy MAE (meV/atom) and force MAE (meV/Å) against the number of DFT labels, one line per
    model, the zero-shot error drawn as a dotted line: what the specialisation cost. None without a general set."""
    models = {k: e for k, e in curves["models"].items() if e.get("general")}
    if not models:
        return None
    plt = _pyplot()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 2, figsize=(9.2, 4.0), dpi=120)
    for ax, (metric, ylabel) in zip(axes, (("energy_mae_per_atom", "general-set energy MAE (meV/atom)"),
                                           ("force_mae", "general-set force MAE (meV/Å)"))):
        drawn: list[float] = []
        for model in sorted(models):
            entry = models[model]
            x, y = _series(entry, "general", metric, 1000.0)
            if not x.size:
                continue
            color = colors[sorted(curves["models"]).index(model) % len(colors)]
            ax.plot(x, y, marker="o", color=color, label=_label(curves, model))
            drawn.extend(y.tolist())
            if x[0] == 0:
                ax.axhline(y[0], color=color, ls=":", lw=1)
        ax.set_ylabel(ylabel)
        _budget_axis(ax, curves.get("budgets", []), drawn)
        ax.legend(frameon=False, fontsize=7)
    fig.suptitle(title or "forgetting: error on the general set (dotted: zero-shot)")
    return _save(fig, path)


def plot_training_histories(histories: Mapping[str, Mapping[str, np.ndarray]], path: str | pathlib.Path
                            ) -> pathlib.Path | None:
    """Validation force MAE (meV/Å) per epoch of every fine-tune (``{label: {"epoch", "valid_force_mae"}}``)."""
    usable = {k: h for k, h in histories.items()
              if "valid_force_mae" in h and np.isfinite(np.asarray(h["valid_force_mae"], dtype=float)).any()}
    if not usable:
        return None
    plt = _pyplot()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ("-", "--", ":", "-.")

    def order(label: str):  # "<model> N=<budget>": by model, then by budget as a number
        model, _, budget = label.rpartition(" N=")
        return (model, int(budget) if budget.isdigit() else 0, label)

    models = sorted({order(label)[0] for label in usable})
    fig, ax = plt.subplots(figsize=(6.0, 4.2), dpi=120)
    drawn: list[float] = []
    seen: dict[str, int] = {}
    for label in sorted(usable, key=order):
        history = usable[label]
        model = order(label)[0]
        k = seen[model] = seen.get(model, -1) + 1
        values = 1000.0 * np.asarray(history["valid_force_mae"], dtype=float)
        epochs = np.asarray(history.get("epoch", np.arange(1, len(values) + 1)), dtype=float)
        ax.plot(epochs, values, ls=styles[k % len(styles)], color=colors[models.index(model) % len(colors)],
                label=label)
        drawn.extend(values[np.isfinite(values)].tolist())
    positive = [v for v in drawn if v > 0]
    if positive and max(positive) > LOG_RATIO * min(positive):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation force MAE (meV/Å)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False, fontsize=7)
    return _save(fig, path)


# --------------------------------------------------------------------------------------- AiiDA part


def _histories(node) -> dict[str, dict[str, np.ndarray]]:
    histories = {}
    if "models" not in node.outputs:
        return histories
    for key, per_budget in node.outputs.models.items():
        for budget_key, model in per_budget.items():
            creator = model.creator
            if creator is None or "history" not in creator.outputs:
                continue
            history = creator.outputs.history
            histories[f"{key} {budget_key.replace('budget_', 'N=')}"] = {
                name: history.get_array(name) for name in history.get_arraynames()}
    return histories


def write_finetune_report(node, output: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """Write the report of a finished FinetuneStudyWorkChain ``node`` into ``output``; return the files by name.

    Contents: ``learning_curve.md``/``.csv`` (one row per model and budget), ``learning_curves.png``,
    ``forgetting.png`` (with a general set), ``training_history.png`` (validation force MAE per epoch),
    ``test_set.extxyz`` (the held-out DFT labels) and ``index.html`` showing all of them.
    """
    output = pathlib.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    curves = node.outputs.learning_curve.get_dict()
    rows = curves["rows"]
    title = node.label or f"fine-tuning study {node.pk}"
    split = node.outputs.split.get_dict()
    note = (f"Held-out test split: {len(split['test'])} frames, {len(split['groups']['test'])} group(s), never "
            f"seen in training. Energies {curves.get('energy_reference') or ''}. Gain: error reduction against "
            f"the zero-shot model (budget 0). FinetuneStudyWorkChain pk {node.pk}.")
    files: dict[str, pathlib.Path] = {"learning_curve.md": output / "learning_curve.md",
                                      "learning_curve.csv": output / "learning_curve.csv",
                                      "test_set.extxyz": output / "test_set.extxyz"}
    files["learning_curve.md"].write_text(to_markdown(rows, title=title, note=note))
    files["learning_curve.csv"].write_text(to_csv(rows))
    node.outputs.test_set.export_extxyz(files["test_set.extxyz"])
    files["learning_curves.png"] = plot_learning_curves(curves, output / "learning_curves.png", title=title)
    images = ["learning_curves.png"]
    forgetting = plot_forgetting(curves, output / "forgetting.png")
    if forgetting is not None:
        files["forgetting.png"] = forgetting
        images.append("forgetting.png")
    history = plot_training_histories(_histories(node), output / "training_history.png")
    if history is not None:
        files["training_history.png"] = history
        images.append("training_history.png")
    files["index.html"] = output / "index.html"
    files["index.html"].write_text(_html(title, rows, note, images))
    return files


def _html(title: str, rows: list[Mapping[str, Any]], note: str, images: list[str]) -> str:
    head, cells = format_table(rows)
    return page(title, f"""<h1>{html.escape(title)}</h1>
<p>Universal MLIPs fine-tuned on N DFT (pw.x) labels of the target system, errors on held-out frames
(N = 0: zero-shot) and on a general reference set (forgetting).</p>
{table("learning-curve", head, cells)}
<p>{html.escape(note)}</p>
<div id="plots">{figures(images)}</div>""", max_width=1400, image_width=1350)
