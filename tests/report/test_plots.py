"""Plots and tables (pure)."""

import numpy as np

from aiida_reactmlip.report.plots import plot_site_energies
from aiida_reactmlip.report.tables import active_columns, format_rows, to_markdown


def test_site_energy_plot_is_a_png(tmp_path):
    path = plot_site_energies(["fcc", "hcp"], np.array([0.04, 0.05]), {"m": np.array([-0.35, -0.34])},
                              tmp_path / "sites.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reactive_columns_only_when_present():
    plain = [{"model": "a", "force_mae": 0.1421}]
    reactive = [{"model": "a", "force_mae": 0.1421, "adsorption_energy_mae": 0.3236}]
    assert "adsorption_energy_mae" not in [c[0] for c in active_columns(plain)]
    assert format_rows(reactive)[0][-1] == "324"  # meV
    assert "E_ads MAE (meV)" in to_markdown(reactive) and "E_ads" not in to_markdown(plain)
    assert format_rows(plain)[0][3] == "142.1"  # force MAE in meV/Å
