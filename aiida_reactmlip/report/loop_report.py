"""Report of active-learning loops: error against DFT labels (loop and random baseline on one plot), the
configurations selected per round, thumbnails of them, and an HTML page.

The plotting functions are pure (numpy / ASE in, PNG out); :func:`write_loop_report` reads finished
``reactmlip.active_learning`` nodes.
"""

from __future__ import annotations

import csv
import html
import json
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np

from aiida_reactmlip.metrics.learning_curves import CURVE_METRICS, REACTIVE_METRICS
from aiida_reactmlip.metrics.loop import BARRIER_CHECK_KEYS
from aiida_reactmlip.report.evidence import loop_curve, write_loop_evidence
from aiida_reactmlip.report.page import figures, page
from aiida_reactmlip.report.plots import _finish, _pyplot, _save

#: Frame info keys used as the reaction coordinate of a pool frame, in order of preference.
COORDINATE_KEYS = ("reaction_coordinate", "scan_coordinate", "image_index", "md_step")

Curve = tuple[Sequence[float], Sequence[float]]


# ---------------------------------------------------------------------------------------- pure plots


def plot_error_vs_labels(
    curves: Mapping[str, Sequence[Curve]],
    path: str | pathlib.Path,
    *,
    target: float | None = None,
    ylabel: str = "force MAE on the validation set (eV/Å)",
    title: str = "",
) -> pathlib.Path:
    """Error against the number of DFT labels, one series per name (e.g. the loop and random selection).

    ``curves``: name -> list of (n_labels, errors) curves, one per seed. One seed: a line with markers;
    several: each seed thin, the mean over the label counts they share bold with a ±1 std band.
    ``target``: a horizontal dashed line.
    """
    from aiida_reactmlip.metrics.loop import mean_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.2), dpi=120)
    markers = "os^Dv<>p"
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, series) in enumerate(curves.items()):
        color = colors[k % len(colors)]
        marker = markers[k % len(markers)]
        if len(series) == 1:
            x, y = series[0]
            ax.plot(x, y, marker=marker, color=color, lw=2, label=name)
            continue
        for x, y in series:
            ax.plot(x, y, color=color, lw=0.8, alpha=0.35)
        grid, mean, std = mean_curve(series)
        ax.plot(grid, mean, marker=marker, color=color, lw=2, label=f"{name} (mean of {len(series)} seeds)")
        ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.15, lw=0)
    if target is not None:
        ax.axhline(target, color="0.3", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("DFT labels used")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    return _finish(fig, ax, path, title)


def plot_selected_per_round(
    coordinate: np.ndarray,
    energy: np.ndarray,
    selected_by_round: Mapping[int, Sequence[int]],
    path: str | pathlib.Path,
    *,
    xlabel: str = "reaction coordinate",
    ylabel: str = "relative energy (eV/atom)",
    title: str = "",
) -> pathlib.Path:
    """Pool frames (grey) at (coordinate, energy) with the frames selected in each round marked and
    numbered by round."""
    plt = _pyplot()
    coordinate = np.asarray(coordinate, dtype=float)
    energy = np.asarray(energy, dtype=float)
    fig, ax = plt.subplots(figsize=(6.0, 4.2), dpi=120)
    ax.scatter(coordinate, energy, s=14, color="0.75", label=f"pool ({len(coordinate)} frames)", zorder=1)
    cmap = plt.get_cmap("viridis")
    rounds = sorted(selected_by_round)
    for j, r in enumerate(rounds):
        indices = list(selected_by_round[r])
        color = cmap(j / max(len(rounds) - 1, 1))
        ax.scatter(coordinate[indices], energy[indices], s=46, color=color, edgecolor="k", lw=0.6,
                   label=f"round {r}", zorder=2)
        for i in indices:
            ax.annotate(str(r), (coordinate[i], energy[i]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _finish(fig, ax, path, title, fontsize=8, ncol=2)


def plot_thumbnails(images: Sequence, captions: Sequence[str], path: str | pathlib.Path, columns: int = 6,
                    rotation: str = "-70x,20y") -> pathlib.Path:
    """A grid of ASE renderings (``ase.visualize.plot.plot_atoms``) of ``images`` with ``captions``."""
    from ase.visualize.plot import plot_atoms

    plt = _pyplot()
    n = max(len(images), 1)
    columns = min(columns, n)
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.0 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, atoms, caption in zip(axes.ravel(), images, captions):
        plot_atoms(atoms, ax, rotation=rotation, radii=0.45)
        ax.set_title(caption, fontsize=7)
    return _save(fig, path)


def pool_coordinate(frames_info: Sequence[dict], images: Sequence | None = None) -> tuple[np.ndarray, str]:
    """A coordinate per pool frame and its axis label: the first of :data:`COORDINATE_KEYS` that every
    frame has, else the first principal component of the structural fingerprints, else the frame index."""
    for key in COORDINATE_KEYS:
        if frames_info and all(key in info for info in frames_info):
            return np.array([float(info[key]) for info in frames_info]), key.replace("_", " ")
    if images is not None and len(images) > 2:
        from aiida_reactmlip.selection import structural_fingerprints

        features = np.asarray(structural_fingerprints(list(images)), dtype=float)
        features = features - features.mean(axis=0)
        if np.any(features):
            _, _, vt = np.linalg.svd(features, full_matrices=False)
            return features @ vt[0], "structural fingerprint PC1"
    return np.arange(len(frames_info), dtype=float), "pool frame index"


def relative_energy_per_atom(energies: np.ndarray, n_atoms: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Energy per atom (eV/atom) relative to the lowest of the frame's group (NaN stays NaN)."""
    per_atom = np.asarray(energies, dtype=float) / np.asarray(n_atoms, dtype=float)
    out = np.full_like(per_atom, np.nan)
    for group in set(groups):
        mask = np.array([g == group for g in groups])
        finite = per_atom[mask][np.isfinite(per_atom[mask])]
        if finite.size:
            out[mask] = per_atom[mask] - finite.min()
    return out


# ---------------------------------------------------------------------------------------- from nodes


def _rows(node) -> list[dict]:
    return [{"loop": node.pk, **{k: v for k, v in row.items() if k not in ("selected", "model_uuid", "metrics_uuid")},
             "selected": " ".join(str(i) for i in row.get("selected", []))}
            for row in node.outputs.summary["rounds"]]


def _saddle_checks(node) -> tuple[list, list] | None:
    """A barrier loop's saddle checks as a curve: (DFT labels after the round, |error| in meV), or None."""
    rows = [row for row in node.outputs.summary["rounds"] if row.get("barrier_check_error") is not None]
    return ([row["n_labels"] for row in rows], [1000 * row["barrier_check_error"] for row in rows]) if rows else None


def _series_name(curve: dict) -> str:
    return "loop" if curve["strategy"] != "random" else "random"


def write_loop_report(
    nodes, output: str | pathlib.Path, baselines: Sequence | None = None, target: float | None = None
) -> dict[str, pathlib.Path]:
    """Write the report of finished loop(s) ``nodes`` (one node or a list, one per seed) and their random
    baselines into ``output``; return the files by name.

    Files: ``error_vs_labels.png`` (force MAE, eV/Å, against DFT labels: loop and random on one plot),
    ``energy_error_vs_labels.png`` (eV/atom), ``<reactive metric>_vs_labels.png`` (e.g.
    ``scan_energy_mae_vs_labels.png``: the reactive errors the validation set allows, in meV),
    ``selected_per_round.png`` (pool frames on a reaction coordinate with the frames picked in each round),
    ``thumbnails.png`` (the frames the first loop picked), ``saddle_check_vs_labels.png`` (barrier loops: the
    model's barrier error at its own saddle, meV, per round), ``rounds.csv`` and ``index.html``. ``target``
    (eV/Å) defaults to the loops' own ``target_force_mae``; with baselines, the labels each needed to reach it are compared
    (:func:`aiida_reactmlip.metrics.loop.compare_to_random`).
    """
    from aiida_reactmlip.metrics.loop import compare_to_random

    nodes = list(nodes) if isinstance(nodes, (list, tuple)) else [nodes]
    baselines = list(baselines or [])
    output = pathlib.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    curves = [loop_curve(n) for n in nodes]
    base_curves = [loop_curve(n) for n in baselines]
    target = target if target is not None else curves[0].get("target_force_mae")
    files: dict[str, pathlib.Path] = {}

    loop_name = f"loop ({curves[0]['strategy']}, k={curves[0]['k']})"
    series = {loop_name: [(c["n_labels"], c["force_mae"]) for c in curves]}
    if base_curves:
        series[f"random (k={base_curves[0]['k']})"] = [(c["n_labels"], c["force_mae"]) for c in base_curves]
    files["error_vs_labels.png"] = plot_error_vs_labels(series, output / "error_vs_labels.png", target=target,
                                                        title="force error against DFT labels")
    energy_series = {}
    for name, group in zip(series, [curves, base_curves]):
        points = [(c["n_labels"], c["energy_mae_per_atom"]) for c in group if None not in c["energy_mae_per_atom"]]
        if points:
            energy_series[name] = points
    if energy_series:
        files["energy_error_vs_labels.png"] = plot_error_vs_labels(
            energy_series, output / "energy_error_vs_labels.png", target=curves[0].get("target_energy_mae"),
            ylabel="energy MAE on the validation set (eV/atom)", title="energy error against DFT labels")

    for metric in REACTIVE_METRICS:  # the reactive errors the validation set allows (eV), plotted in meV
        reactive_series = {name: [(c["n_labels"], [1000 * e for e in c[metric]]) for c in group if c.get(metric)]
                           for name, group in zip(series, [curves, base_curves])}
        reactive_series = {name: points for name, points in reactive_series.items() if points}
        if reactive_series:
            label = CURVE_METRICS[metric][0]
            files[f"{metric}_vs_labels.png"] = plot_error_vs_labels(
                reactive_series, output / f"{metric}_vs_labels.png", ylabel=f"{label} (meV)",
                title=f"{label} on the validation set")

    barrier_series = {name: [checks for checks in map(_saddle_checks, group) if checks]
                      for name, group in zip(series, [nodes, baselines])}
    barrier_series = {name: points for name, points in barrier_series.items() if points}
    if barrier_series:  # the barrier loop: its stop criterion against the labels spent
        barrier_target = nodes[0].outputs.summary.get_dict().get("target_barrier_error")
        files["saddle_check_vs_labels.png"] = plot_error_vs_labels(
            barrier_series, output / "saddle_check_vs_labels.png",
            target=None if barrier_target is None else 1000 * barrier_target,
            ylabel="|model - DFT| barrier at the model's saddle (meV)", title="saddle check against DFT labels")

    comparison = None
    if base_curves and target is not None:
        pairs = min(len(curves), len(base_curves))
        comparison = compare_to_random([(c["n_labels"], c["force_mae"]) for c in curves[:pairs]],
                                       [(c["n_labels"], c["force_mae"]) for c in base_curves[:pairs]], target)

    evidence = None
    if target is not None and len(nodes) + len(baselines) > 2:  # several seeds: mean, 95 % band, paired tests
        evidence_files = write_loop_evidence([*nodes, *baselines], output, target)
        files.update(evidence_files)
        evidence = json.loads(evidence_files["evidence.json"].read_text())

    selection_files = _selection_plots(nodes[0], output)
    files.update(selection_files)

    rows = [row for n in [*nodes, *baselines] for row in _rows(n)]
    files["rounds.csv"] = output / "rounds.csv"
    with open(files["rounds.csv"], "w", newline="") as handle:
        columns = ["loop", "round", "strategy", "n_labels", "n_new", "force_mae", "energy_mae_per_atom", "force_rmse",
                   *REACTIVE_METRICS, *BARRIER_CHECK_KEYS, "seconds", "selected"]
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    files["index.html"] = output / "index.html"
    files["index.html"].write_text(_html(curves, base_curves, comparison, target, files, evidence))
    return files


def _selection_plots(node, output: pathlib.Path) -> dict[str, pathlib.Path]:
    """Selected configurations per round: on the fixed pool (oracle mode), or on each round's pool."""
    files = {}
    rounds = node.outputs.rounds
    selected_by_round = {int(key.split("_")[1]): rounds[key].selected.get_list()
                         for key in sorted(rounds) if "selected" in rounds[key]}
    if not selected_by_round:
        return files
    if "label_pool" in node.inputs:
        pools = {0: (node.inputs.label_pool, selected_by_round)}
    else:
        pools = {r: (rounds[f"round_{r:02d}"].pool, {r: sel}) for r, sel in selected_by_round.items()
                 if "pool" in rounds[f"round_{r:02d}"]}
    thumbs, captions = [], []
    for r, (pool, selection) in pools.items():
        frames = pool.frames
        images = frames.to_atoms()
        from aiida_reactmlip.metrics.by_system import frame_groups

        coordinate, xlabel = pool_coordinate(frames.info, images)
        energy = relative_energy_per_atom(frames.energies, frames.n_atoms, frame_groups(frames))
        name = "selected_per_round.png" if r == 0 else f"selected_round_{r:02d}.png"
        source = "DFT" if r == 0 else "MLIP"
        files[name] = plot_selected_per_round(
            coordinate, energy, selection, output / name, xlabel=xlabel,
            ylabel=f"{source} energy rel. to group minimum (eV/atom)",
            title="pool frames and the frames selected per round" if r == 0 else f"round {r}: pool and selection")
        for rr, indices in selection.items():
            for i in indices:
                thumbs.append(images[i])
                captions.append(f"round {rr}: #{i}")
    if thumbs and len(thumbs) <= 48:
        files["thumbnails.png"] = plot_thumbnails(thumbs, captions, output / "thumbnails.png")
    return files


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _html(curves: list[dict], base_curves: list[dict], comparison: dict | None, target, files,
          evidence: dict | None = None) -> str:
    def table(curve: dict) -> str:
        head = ("<tr><th>round</th><th>strategy</th><th>DFT labels</th><th>new</th><th>force MAE (eV/Å)</th>"
                "<th>energy MAE (eV/atom)</th><th>time (s)</th><th>selected</th></tr>")
        body = "".join(
            f"<tr><td>{r['round']}</td><td>{html.escape(str(r['strategy']))}</td><td>{r['n_labels']}</td>"
            f"<td>{r.get('n_new', '')}</td><td>{_fmt(r['force_mae'])}</td><td>{_fmt(r['energy_mae_per_atom'], 5)}</td>"
            f"<td>{_fmt(r.get('seconds'), 1)}</td><td>{html.escape(' '.join(map(str, r.get('selected', []))))}</td></tr>"
            for r in curve["rounds"])
        return (f"<h3>{html.escape(_series_name(curve))} pk {curve['pk']}: strategy {html.escape(curve['strategy'])}, "
                f"seed {curve['seed']}, stopped: {html.escape(str(curve['stop_reason']))}</h3>"
                f"<table>{head}{body}</table>")

    verdict = ""
    if comparison is not None:
        verdict = (f"<p id='verdict'><b>{html.escape(comparison['verdict'])}</b> (target {target:g} eV/Å; "
                   f"per seed: loop {comparison['loop_labels']}, random {comparison['random_labels']}; mean force "
                   f"MAE over the budget: loop {comparison['loop_auc']:.4f}, random {comparison['random_auc']:.4f} "
                   "eV/Å)</p>")
    if evidence is not None:
        verdict += "".join(f"<p class='evidence'>{html.escape(c['labels_verdict'])}<br>"
                           f"{html.escape(c['mean_force_mae_verdict'])}</p>" for c in evidence["comparisons"].values())
    tables = "".join(table(c) for c in [*curves, *base_curves])
    return page(f"active learning loop {curves[0]['pk']}", f"""<h1>Active learning: error against DFT labels</h1>
<p>Each round fine-tunes the base model on every DFT label so far and measures the force MAE (eV/Å) on a
fixed DFT validation set; round 0 is the zero-shot model.</p>
{verdict}
<div id="plots">{figures(name for name in files if name.endswith(".png"))}</div>
{tables}""", table_style="border-collapse:collapse;margin-bottom:1em", image_check=False)
