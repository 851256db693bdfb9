"""Leaderboard columns and tables of the structural stability and NEB results (pure), and the NEB plot."""

import csv
import io

import numpy as np

from aiida_reactmlip.report.plots import plot_neb_profiles
from aiida_reactmlip.report.tables import (
    active_columns,
    format_rows,
    headers,
    neb_markdown,
    neb_rows,
    stability_markdown,
    stability_rows,
    to_csv,
)

ROWS = [
    {"model": "a", "force_mae": 0.0607, "barrier_mae": 0.003, "neb_barrier_error": -0.0254,
     "dft_band_barrier_error": 0.0113, "stability_rmsd_mean": 0.04321, "stability_n_changed": 1,
     "stability_n_minima": 4, "mlip_neb_converged": True},
    {"model": "b", "force_mae": 0.0717},
]


def test_reactive_columns_and_their_units():
    keys = [key for key, _, _ in active_columns(ROWS)]
    assert keys[-4:] == ["dft_band_barrier_error", "neb_barrier_error", "stability_rmsd_mean", "stability_n_changed"]
    cells = dict(zip(headers(ROWS), format_rows(ROWS)[0]))
    assert cells["NEB barrier err (meV)"] == "-25"  # eV -> meV, signed
    assert cells["barrier err on DFT NEB band (meV)"] == "+11"
    assert cells["relaxed minima RMSD (Å)"] == "0.043"
    assert cells["minima changed"] == "1/4"
    assert format_rows(ROWS)[1][-4:] == ["-", "-", "-", "-"]  # a model without them
    assert "NEB barrier err (meV)" not in headers([ROWS[1]])  # nobody has them: no column
    rows = list(csv.DictReader(io.StringIO(to_csv(ROWS))))
    assert float(rows[0]["neb_barrier_error"]) == -0.0254 and rows[0]["stability_n_minima"] == "4"


def test_stability_and_neb_tables():
    stability = {"chgnet-0.3.0": {"frames": [
        {"name": "h-cu111-bridge", "rmsd_A": 0.2371, "max_displacement_A": 0.80, "n_bonds_broken": 0,
         "n_bonds_formed": 1, "dissociated": False, "adsorbate_site_reference": "bridge",
         "adsorbate_site_relaxed": "fcc", "adsorbate_left_site": True, "relaxation_energy_eV": -0.0123,
         "converged": True},
        {"name": "h2-gas", "rmsd_A": 0.0061, "max_displacement_A": 0.006, "n_bonds_broken": 0, "n_bonds_formed": 0,
         "dissociated": False, "relaxation_energy_eV": -0.002, "converged": False},
    ]}}
    rows = stability_rows(stability)
    assert rows[0] == ["chgnet-0.3.0", "h-cu111-bridge", "0.237", "0.80", "0", "1", "no", "bridge -> fcc", "yes",
                       "-0.012", "yes"]
    assert rows[1][7:9] == ["-", "-"] and rows[1][-1] == "no"
    assert "| chgnet-0.3.0 | h-cu111-bridge |" in stability_markdown(stability)
    neb = {"sevennet-0": {"dft_neb_barrier_eV": 0.0641, "mlip_neb_barrier_eV": 0.0712, "neb_barrier_error_eV": 0.0071,
                          "model_dft_band_barrier_eV": 0.0683, "dft_band_barrier_error_eV": 0.0042,
                          "mlip_neb_converged": True}}
    assert neb_rows(neb) == [["sevennet-0", "64", "71", "+7", "68", "+4", "yes"]]
    assert "MLIP NEB - DFT NEB (meV)" in neb_markdown(neb)


def test_neb_profile_plot(tmp_path):
    path = plot_neb_profiles(np.array([0.0, 0.06, 0.01]), {"m": np.array([0.0, 0.03, 0.07, 0.03, 0.0])},
                             {"m": np.array([0.0, 0.08, 0.02])}, tmp_path / "neb.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
