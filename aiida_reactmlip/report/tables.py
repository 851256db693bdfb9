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
)
#: Columns stored in eV (or eV/Å) and shown in meV.
MILLI = {"energy_mae_per_atom", "energy_rmse_per_atom", "force_mae", "force_rmse", "adsorption_energy_mae",
         "barrier_mae"}


#: Columns shown only when some row has a value (reactive metrics exist for some systems only).
OPTIONAL = {"adsorption_energy_mae", "barrier_mae"}


def active_columns(rows: list[dict] | None = None) -> list[tuple[str, str, str]]:
    """The columns of :data:`COLUMNS` to show for ``rows``: optional ones only where some row has a value."""
    return [c for c in COLUMNS if c[0] not in OPTIONAL or any(row.get(c[0]) is not None for row in rows or [])]


def format_rows(rows: list[dict]) -> list[list[str]]:
    """Rows of formatted cells in the order of :func:`active_columns` (meV/atom, meV/Å, meV)."""
    table = []
    columns = active_columns(rows)
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            if value is None:
                cells.append("-")
                continue
            if key in MILLI:
                value = 1000.0 * float(value)
            cells.append(fmt.format(value))
        table.append(cells)
    return table


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
    keys = ["model", "model_uuid", "metrics_uuid", "energy_reference"] + [k for k, _, _ in COLUMNS[1:]] + ["stress_mae"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()
