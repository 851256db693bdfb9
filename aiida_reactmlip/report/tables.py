"""Leaderboard tables (pure: dicts in, text out)."""

from __future__ import annotations

import csv
import io

#: (key, header, format) of the columns shown for a leaderboard row.
COLUMNS = (
    ("model", "model", "{}"),
    ("energy_mae_per_atom", "E MAE (meV/atom)", "{:.2f}"),
    ("energy_rmse_per_atom", "E RMSE (meV/atom)", "{:.2f}"),
    ("force_mae", "F MAE (meV/Å)", "{:.1f}"),
    ("force_rmse", "F RMSE (meV/Å)", "{:.1f}"),
    ("force_cosine_similarity", "F cosine", "{:.3f}"),
    ("adsorption_energy_mae", "E_ads MAE (meV)", "{:.0f}"),
    ("barrier_mae", "barrier MAE (meV)", "{:.0f}"),
    ("dft_band_barrier_error", "barrier err on DFT NEB band (meV)", "{:+.0f}"),
    ("neb_barrier_error", "NEB barrier err (meV)", "{:+.0f}"),
    ("stability_rmsd_mean", "relaxed minima RMSD (Å)", "{:.3f}"),
    ("stability_n_changed", "minima changed", "{}"),
    ("physics_repulsive_pairs", "pairs repulsive", "{}"),
    ("physics_nve_max_abs_drift", "NVE max abs drift (meV/atom/ps)", "{:.2f}"),
    ("physics_ramp_min_t_reached", "ramp T reached (K)", "{:.0f}"),
    ("physics_reaction_sign_agrees", "reaction sign as DFT", "{}"),
)
#: Columns stored in eV (or eV/Å) and shown in meV.
MILLI = {"energy_mae_per_atom", "energy_rmse_per_atom", "force_mae", "force_rmse", "adsorption_energy_mae",
         "barrier_mae", "dft_band_barrier_error", "neb_barrier_error"}


#: Columns shown only when some row has a value (reactive metrics exist for some systems only).
OPTIONAL = {"adsorption_energy_mae", "barrier_mae", "dft_band_barrier_error", "neb_barrier_error",
            "stability_rmsd_mean", "stability_n_changed", "physics_repulsive_pairs", "physics_nve_max_abs_drift",
            "physics_ramp_min_t_reached", "physics_reaction_sign_agrees"}
#: "k/n" columns of the physics-aware checks: the count and what it is out of.
OUT_OF = {"physics_repulsive_pairs": "physics_pairs", "physics_reaction_sign_agrees": "physics_reaction_with_dft"}


def _cell(key: str, fmt: str, row: dict) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if key == "stability_n_changed":  # "k/n": minima where a bond broke or formed or an adsorbate left its site
        return f"{int(value)}/{int(row.get('stability_n_minima', 0))}"
    if key in OUT_OF:
        return f"{int(value)}/{int(row.get(OUT_OF[key]) or 0)}"
    if key in MILLI:
        value = 1000.0 * float(value)
    return fmt.format(value)


def active_columns(rows: list[dict] | None = None) -> list[tuple[str, str, str]]:
    """The columns of :data:`COLUMNS` to show for ``rows``: optional ones only where some row has a value."""
    return [c for c in COLUMNS if c[0] not in OPTIONAL or any(row.get(c[0]) is not None for row in rows or [])]


def format_rows(rows: list[dict]) -> list[list[str]]:
    """Rows of formatted cells in the order of :func:`active_columns` (meV/atom, meV/Å, meV)."""
    columns = active_columns(rows)
    return [[_cell(key, fmt, row) for key, _, fmt in columns] for row in rows]


def headers(rows: list[dict] | None = None) -> list[str]:
    """Column headers for ``rows`` (see :func:`active_columns`)."""
    return [header for _, header, _ in active_columns(rows)]


def to_markdown(rows: list[dict], title: str = "", note: str = "") -> str:
    """A Markdown table of the leaderboard."""
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(headers(rows)) + " |")
    lines.append("|" + "|".join("---" for _ in active_columns(rows)) + "|")
    lines.extend("| " + " | ".join(cells) + " |" for cells in format_rows(rows))
    if note:
        lines.extend(["", note])
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    """CSV of the leaderboard in SI-like units of the package (eV/atom, eV/Å), full precision."""
    keys = (["model", "model_uuid", "metrics_uuid", "energy_reference"] + [k for k, _, _ in COLUMNS[1:]]
            + ["stress_mae", "stability_n_minima", "stability_rmsd_max", "stability_n_left_site",
               "stability_n_dissociated", "stability_n_not_converged", "dft_neb_barrier", "mlip_neb_barrier",
               "mlip_neb_converged"])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


#: (key, header, format) of the per-minimum structural stability table.
STABILITY_COLUMNS = (
    ("name", "minimum", "{}"),
    ("rmsd_A", "RMSD (Å)", "{:.3f}"),
    ("max_displacement_A", "max displacement (Å)", "{:.2f}"),
    ("n_bonds_broken", "bonds broken", "{}"),
    ("n_bonds_formed", "bonds formed", "{}"),
    ("dissociated", "dissociated", "{}"),
    ("adsorbate_site_relaxed", "site after relaxation", "{}"),
    ("adsorbate_left_site", "left site", "{}"),
    ("relaxation_energy_eV", "ΔE relax (eV)", "{:+.3f}"),
    ("converged", "converged", "{}"),
)


def stability_rows(stability: dict[str, dict]) -> list[list[str]]:
    """Cells of the stability table: ``stability`` maps a model name to its compute_stability dict."""
    table = []
    for model, values in stability.items():
        for frame in values["frames"]:
            cells = [model]
            for key, _, fmt in STABILITY_COLUMNS:
                value = frame.get(key)
                if key == "adsorbate_site_relaxed" and value is not None:
                    value = f"{frame.get('adsorbate_site_reference')} -> {value}"
                if isinstance(value, bool):
                    value = "yes" if value else "no"
                cells.append("-" if value is None else fmt.format(value))
            table.append(cells)
    return table


def stability_markdown(stability: dict[str, dict]) -> str:
    """A Markdown table of every relaxed DFT minimum per model."""
    head = ["model"] + [header for _, header, _ in STABILITY_COLUMNS]
    lines = ["## Structural stability: DFT minima relaxed with each model", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines.extend("| " + " | ".join(cells) + " |" for cells in stability_rows(stability))
    return "\n".join(lines) + "\n"


#: (key, header) of the NEB comparison table; energies in meV.
NEB_COLUMNS = (
    ("dft_neb_barrier_eV", "DFT NEB barrier (meV)"),
    ("mlip_neb_barrier_eV", "MLIP NEB barrier (meV)"),
    ("neb_barrier_error_eV", "MLIP NEB - DFT NEB (meV)"),
    ("model_dft_band_barrier_eV", "MLIP on DFT NEB band (meV)"),
    ("dft_band_barrier_error_eV", "on band - DFT (meV)"),
)


def neb_rows(neb: dict[str, dict]) -> list[list[str]]:
    """Cells of the NEB table: ``neb`` maps a model name to its compare_neb dict."""
    table = []
    for model, values in neb.items():
        cells = [model] + [f"{1000.0 * float(values[key]):+.0f}" if "error" in key else f"{1000.0 * float(values[key]):.0f}"
                           for key, _ in NEB_COLUMNS]
        cells.append("yes" if values.get("mlip_neb_converged") else "no")
        table.append(cells)
    return table


def neb_headers() -> list[str]:
    return ["model"] + [header for _, header in NEB_COLUMNS] + ["MLIP NEB converged"]


def neb_markdown(neb: dict[str, dict]) -> str:
    """A Markdown table of each model's NEB barrier against the DFT NEB."""
    head = neb_headers()
    lines = ["## NEB barrier: each model's own NEB against the DFT NEB (same end states)", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines.extend("| " + " | ".join(cells) + " |" for cells in neb_rows(neb))
    return "\n".join(lines) + "\n"
