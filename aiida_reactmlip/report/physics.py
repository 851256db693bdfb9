"""Tables and plots of the physics-aware checks (pure: plain dicts and numpy in, text and PNG files out).

``metrics`` below is the ``metrics`` output of ``reactmlip.physics`` (``physics.json`` of the runner), ``arrays``
its ``curves`` / ``traces`` arrays by name (:mod:`aiida_reactmlip.physics.suite` names them).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

import numpy as np

from .plots import _pyplot, _save

__all__ = [
    "PHYSICS_COLUMNS",
    "physics_row",
    "physics_table",
    "plot_diatomic_curves",
    "plot_nve_traces",
    "to_markdown",
]

#: (key, header, format) of one leaderboard row; units in the headers.
PHYSICS_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("model", "model", "{}"),
    ("pairs_repulsive", "pairs repulsive", "{}"),
    ("pairs_single_well", "pairs single well", "{}"),
    ("max_inflections", "max inflections", "{}"),
    ("max_fe_dev", "max dev F+dE/dr (eV/Å)", "{:.3f}"),
    ("h_h_r_min", "H-H r_min (Å)", "{:.3f}"),
    ("nve_max_abs_drift", "NVE max abs drift (meV/atom/ps)", "{:.3f}"),
    ("nve_max_spread", "NVE max spread (meV/atom)", "{:.3f}"),
    ("nve_bonds_changed", "NVE bonds broken/formed", "{}"),
    ("ramp", "ramp: T reached (K)", "{}"),
    ("reaction", "reaction ΔE (eV) [DFT]", "{}"),
)


def physics_row(model: str, metrics: Mapping) -> dict:
    """One leaderboard row of ``metrics`` (see :data:`PHYSICS_COLUMNS`); values None where a check did not run."""
    summary = metrics.get("summary", {})
    pairs = summary.get("diatomic_pairs") or 0
    hh = metrics.get("diatomic", {}).get("H-H")
    ramp = metrics.get("ramp", [])
    reactions = metrics.get("reactions", [])

    def reaction_text(r):
        dft = r.get("dft_reaction_energy")
        text = f"{r['name']} {r['reaction_energy']:+.3f}"
        if dft is not None:
            text += f" [{dft:+.3f}, sign {'ok' if r['sign_agrees'] else 'WRONG'}]"
        return text

    return {
        "model": model,
        "pairs_repulsive": f"{summary['diatomic_repulsive']}/{pairs}" if pairs else None,
        "pairs_single_well": f"{summary['diatomic_single_well']}/{pairs}" if pairs else None,
        "max_inflections": summary.get("diatomic_max_inflections"),
        "max_fe_dev": summary.get("diatomic_max_force_energy_dev"),
        "h_h_r_min": hh["r_min"] if hh else None,
        "nve_max_abs_drift": summary.get("nve_max_abs_drift"),
        "nve_max_spread": summary.get("nve_max_spread"),
        "nve_bonds_changed": (
            f"{summary['nve_bonds_broken']}/{summary['nve_bonds_formed']}"
            if summary.get("nve_runs")
            else None
        ),
        "ramp": "; ".join(
            f"{r['frame']} {r['t_reached']:.0f}{'' if r['stable'] else ' ' + str(r['reason'])}" for r in ramp
        )
        or None,
        "reaction": "; ".join(reaction_text(r) for r in reactions) or None,
    }


def physics_table(rows: list[Mapping]) -> tuple[list[str], list[list[str]]]:
    """(headers, cells) of leaderboard ``rows``: the columns any row fills, formatted; '-' for missing values."""
    columns = [c for c in PHYSICS_COLUMNS if any(row.get(c[0]) is not None for row in rows)]
    cells = [
        [("-" if row.get(key) is None else fmt.format(row[key])) for key, _, fmt in columns] for row in rows
    ]
    return [header for _, header, _ in columns], cells


def to_markdown(rows: list[Mapping]) -> str:
    """The leaderboard as a Markdown table."""
    headers, cells = physics_table(rows)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def docs_table(study: Mapping) -> str:
    """The generated table of one study in docs/physics.md: its rows and the wall seconds per model.

    ``study`` is one entry of ``docs/results/physics.json``'s ``studies`` (``rows`` and ``models``).
    """
    seconds = {label: entry.get("wall_seconds") for label, entry in study["models"].items()}
    note = "wall time per model (s): " + ", ".join(
        f"{label} {s:.0f}" for label, s in seconds.items() if s is not None
    )
    return f"{to_markdown(study['rows']).rstrip()}\n\n{note}"


def plot_diatomic_curves(
    metrics: Mapping, arrays: Mapping[str, np.ndarray], path: str | pathlib.Path, title: str = ""
) -> pathlib.Path | None:
    """One panel per pair: the energy relative to the curve's far end (eV) against the distance (Å), the
    minimum marked; the y range clipped to the well and 5 eV above. None when there is no curve."""
    pairs = list(metrics.get("diatomic", {}))
    if not pairs:
        return None
    plt = _pyplot()
    columns = min(len(pairs), 4)
    rows = -(-len(pairs) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.7 * rows), dpi=110, squeeze=False)
    for ax, pair in zip(axes.ravel(), pairs):
        key = pair.replace("-", "_")
        m = metrics["diatomic"][pair]
        r = np.asarray(arrays[f"diatomic_{key}_distances"])
        e = np.asarray(arrays[f"diatomic_{key}_energies"]) - m["e_ref"]
        ax.plot(r, e, lw=1.4)
        ax.axhline(0.0, color="0.7", lw=0.8)
        ax.plot([m["r_min"]], [m["e_min"] - m["e_ref"]], "o", ms=4, color="C3")
        low = min(-m["well_depth"], 0.0)
        ax.set_ylim(low - 0.5, 5.0)
        ax.set_title(f"{pair}: r_min {m['r_min']:.2f} Å, depth {m['well_depth']:.2f} eV", fontsize=8)
        ax.set_xlabel("r (Å)", fontsize=8)
        ax.set_ylabel("E - E(r_max) (eV)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(pairs) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_nve_traces(
    metrics: Mapping, arrays: Mapping[str, np.ndarray], path: str | pathlib.Path, title: str = ""
) -> pathlib.Path | None:
    """Total energy per atom minus its start value (meV/atom) against time (ps), one line per NVE run."""
    runs = list(metrics.get("nve", []))
    if not runs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    for k, run in enumerate(runs):
        t = np.asarray(arrays[f"nve_{k}_times_ps"])
        e = np.asarray(arrays[f"nve_{k}_etot"])
        ax.plot(
            t,
            (e - e[0]) / run["n_atoms"] * 1000.0,
            lw=1.1,
            label=f"{run['frame']} {run['temperature_K']:.0f} K ({run['drift_meV_per_atom_per_ps']:+.2f} meV/atom/ps)",
        )
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("E_tot - E_tot(0) (meV/atom)")
    ax.legend(frameon=False, fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def physics_arrays(metrics_node) -> dict[str, np.ndarray]:
    """The curves and traces of the ``reactmlip.physics`` CalcJob that made ``metrics_node`` (its ``metrics``
    output), by array name; empty when the node has no such creator."""
    creator = metrics_node.creator
    arrays: dict[str, np.ndarray] = {}
    for port in ("curves", "traces"):
        if creator is not None and port in creator.outputs:
            node = creator.outputs[port]
            arrays.update({name: node.get_array(name) for name in node.get_arraynames()})
    return arrays


def write_physics_section(
    physics: Mapping[str, object], output: str | pathlib.Path
) -> tuple[dict, list[str], str]:
    """The physics part of a benchmark report: ``physics.md``, the diatomic and NVE plots per model.

    ``physics`` maps a model name to its ``metrics`` Dict node (the benchmark's ``physics`` outputs). Returns
    (files by name, plot file names, the table as HTML).
    """
    from aiida_reactmlip.report.page import table

    output = pathlib.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    files: dict[str, pathlib.Path] = {}
    plots: list[str] = []
    rows = []
    for name, node in physics.items():
        metrics = node.get_dict()
        rows.append(physics_row(name, metrics))
        arrays = physics_arrays(node)
        stem = "".join(c if c.isalnum() or c in "-." else "-" for c in name)
        for kind, plot in (("diatomic", plot_diatomic_curves), ("nve", plot_nve_traces)):
            if not arrays:
                break
            path = plot(metrics, arrays, output / f"physics-{kind}-{stem}.png", title=name)
            if path is not None:
                files[path.name] = path
                plots.append(path.name)
    files["physics.md"] = output / "physics.md"
    files["physics.md"].write_text("## Physics-aware checks\n\n" + to_markdown(rows))
    head, cells = physics_table(rows)
    return files, plots, table("physics", head, cells)
