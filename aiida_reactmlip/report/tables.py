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
)
#: Columns stored in eV (or eV/Å) and shown in meV.
MILLI = {"energy_mae_per_atom", "energy_rmse_per_atom", "force_mae", "force_rmse"}


def format_rows(rows: list[dict]) -> list[list[str]]:
    """Rows of formatted cells in the order of :data:`COLUMNS` (energies in meV/atom, forces in meV/Å)."""
    table = []
    for row in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            value = row.get(key)
            if value is None:
                cells.append("-")
                continue
            if key in MILLI:
                value = 1000.0 * float(value)
            cells.append(fmt.format(value))
        table.append(cells)
    return table


def headers() -> list[str]:
    return [header for _, header, _ in COLUMNS]


def to_markdown(rows: list[dict], title: str = "", note: str = "") -> str:
    """A Markdown table of the leaderboard."""
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(headers()) + " |")
    lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
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
