"""Learning curves, relative gains and forgetting from per-(model, budget) metrics (pure)."""

import pytest

from aiida_reactmlip.metrics.learning_curves import (
    curve_values,
    forgetting,
    labels_to_reach,
    learning_curves,
    reactive_summary,
    relative_change,
    relative_gain,
    table_rows,
)


def _metrics(e, f, barrier=None, reaction=None):
    out = {"energy_mae_per_atom": e, "force_mae": f, "energy_rmse_per_atom": 1.5 * e, "force_rmse": 1.4 * f,
           "n_frames_compared": 4, "energy_reference": "relative:min"}
    if barrier is not None:
        out["barrier_mae"] = barrier
        out["reactive"] = {"path-a": {"kind": "path", "reaction_energy_error_eV": reaction, "barrier_abs_error_eV": barrier},
                           "ads-b": {"kind": "adsorption", "adsorption_energy_mae_eV": 0.2}}
    return out


def test_relative_gain_and_change():
    assert relative_gain(0.20, 0.12) == pytest.approx(0.40)
    assert relative_gain(0.10, 0.15) == pytest.approx(-0.50)  # worse after fine-tuning
    assert relative_gain(0.0, 0.1) is None and relative_gain(None, 0.1) is None
    assert relative_gain(0.1, float("nan")) is None
    assert relative_change(0.10, 0.13) == pytest.approx(0.30)


def test_reactive_summary_averages_reaction_energy_errors_of_paths_only():
    metrics = {"barrier_mae": 0.3, "reactive": {
        "p1": {"kind": "path", "reaction_energy_error_eV": -0.4},
        "p2": {"kind": "path", "reaction_energy_error_eV": 0.2},
        "a1": {"kind": "adsorption", "reaction_energy_error_eV": 9.0},  # not a path: ignored
    }}
    summary = reactive_summary(metrics)
    assert summary == pytest.approx({"barrier_mae": 0.3, "reaction_energy_mae": 0.3})
    assert reactive_summary({"force_mae": 0.1}) == {}
    assert set(curve_values(_metrics(0.01, 0.2))) == {"energy_mae_per_atom", "force_mae", "energy_rmse_per_atom",
                                                      "force_rmse"}


def test_forgetting_is_the_general_set_change_against_zero_shot():
    lost = forgetting({"energy_mae_per_atom": 0.010, "force_mae": 0.100}, {"energy_mae_per_atom": 0.013, "force_mae": 0.090})
    assert lost["energy_mae_per_atom_change"] == pytest.approx(0.003)
    assert lost["energy_mae_per_atom_relative_change"] == pytest.approx(0.30)
    assert lost["force_mae_change"] == pytest.approx(-0.010)
    assert lost["force_mae_relative_change"] == pytest.approx(-0.10)
    assert forgetting(None, {"force_mae": 1.0}) == {}


def test_labels_to_reach():
    assert labels_to_reach([0, 5, 10, 20], [0.3, 0.25, 0.12, 0.10], 0.15) == 10
    assert labels_to_reach([0, 5], [0.3, None], 0.1) is None


def test_learning_curves_gains_forgetting_and_rows():
    points = [
        {"model": "chgnet", "family": "chgnet", "model_name": "chgnet-0.3.0", "budget": 10,
         "test": _metrics(0.006, 0.10, 0.2, -0.1), "general": _metrics(0.012, 0.11), "model_uuid": "u10"},
        {"model": "chgnet", "family": "chgnet", "model_name": "chgnet-0.3.0", "budget": 0,
         "test": _metrics(0.020, 0.25, 0.5, 0.4), "general": _metrics(0.010, 0.10), "model_uuid": "u0"},
        {"model": "chgnet", "family": "chgnet", "model_name": "chgnet-0.3.0", "budget": 5,
         "test": _metrics(0.010, 0.20, 0.4, 0.3), "general": _metrics(0.011, 0.10)},
        {"model": "sevennet", "family": "sevenn", "model_name": "sevennet-0", "budget": 5,
         "test": _metrics(0.008, 0.30)},  # no zero-shot point: no gain
    ]
    curves = learning_curves(points)
    assert curves["budgets"] == [0, 5, 10]
    assert curves["metrics"] == ["energy_mae_per_atom", "energy_rmse_per_atom", "force_mae", "force_rmse",
                                 "barrier_mae", "reaction_energy_mae"]
    chgnet = curves["models"]["chgnet"]
    assert chgnet["budgets"] == [0, 5, 10]  # sorted although given out of order
    assert chgnet["test"]["force_mae"] == [0.25, 0.20, 0.10]
    assert chgnet["gain"]["force_mae"] == pytest.approx([0.0, 0.20, 0.60])
    assert chgnet["gain"]["energy_mae_per_atom"] == pytest.approx([0.0, 0.5, 0.7])
    assert chgnet["gain"]["reaction_energy_mae"] == pytest.approx([0.0, 0.25, 0.75])
    assert chgnet["forgetting"]["energy_mae_per_atom_change"] == pytest.approx([0.0, 0.001, 0.002])
    assert chgnet["forgetting"]["force_mae_relative_change"] == pytest.approx([0.0, 0.0, 0.10])
    sevennet = curves["models"]["sevennet"]
    assert sevennet["gain"]["force_mae"] == [None]
    assert sevennet["general"] == {} and sevennet["forgetting"] == {}
    assert sevennet["test"]["barrier_mae"] == [None]
    rows = table_rows(curves)
    assert [(r["model"], r["budget"]) for r in rows] == [("chgnet", 0), ("chgnet", 5), ("chgnet", 10), ("sevennet", 5)]
    assert rows[2]["force_mae_gain"] == pytest.approx(0.60)
    assert rows[2]["general_force_mae"] == pytest.approx(0.11)
    assert rows[2]["forgetting_force_mae_change"] == pytest.approx(0.01)
    assert rows[2]["model_uuid"] == "u10" and "model_uuid" not in rows[1]


@pytest.mark.parametrize("bad, match", [
    ({"model": "m", "budget": -1, "test": {}}, "whole number"),
    ({"model": "m", "budget": 2.5, "test": {}}, "whole number"),
    ({"budget": 5, "test": {}}, "needs 'model'"),
])
def test_bad_points_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        learning_curves([bad])


def test_duplicate_point_is_refused():
    with pytest.raises(ValueError, match="two points for model 'm' at budget 5"):
        learning_curves([{"model": "m", "budget": 5, "test": {}}, {"model": "m", "budget": 5, "test": {}}])


def test_scan_stretch_energy_errors():
    from aiida_reactmlip.metrics.learning_curves import scan_energy_errors

    infos = [{"group": "s1", "role": "scan", "scan_coordinate": c} for c in (1.0, 1.1, 1.5, 2.0)]
    infos += [{"group": "r", "role": "rattle"}, {"group": "s2", "role": "scan", "scan_coordinate": 1.0}]
    dft = [-10.0, -10.2, -9.0, -7.0, -10.1, -3.0]  # minimum at 1.1 Å; stretch energy 3.2 eV
    model = [-5.0, -5.1, -4.3, -2.3, 0.0, 0.0]  # stretch energy 2.8 eV: error -0.4 eV
    result = scan_energy_errors(infos, dft, model)
    assert set(result["scans"]) == {"s1"}  # s2 has one frame, the rattle is no scan
    s1 = result["scans"]["s1"]
    assert s1["dft_stretch_energy_eV"] == pytest.approx(3.2)
    assert s1["stretch_energy_error_eV"] == pytest.approx(-0.4)
    # relative to the minimum: errors (0.1-0.2)=-0.1... frames 1.0, 1.5, 2.0 -> |-0.1|, |0.8-1.2|, |2.8-3.2|
    assert s1["profile_mae_eV"] == pytest.approx((0.1 + 0.4 + 0.4) / 3)
    assert result["scan_energy_mae"] == pytest.approx(0.4)
    assert "scan_energy_mae" not in scan_energy_errors(infos[4:], dft[4:], model[4:])
    with pytest.raises(ValueError, match="6 frames"):
        scan_energy_errors(infos, dft[:3], model)


# ------------------------------------------------------------------------ report of a study (pure part)


def _curves():
    points = [
        {"model": "chgnet", "family": "chgnet", "model_name": "chgnet-0.3.0", "budget": b,
         "test": {**_metrics(0.02 / (1 + b), 0.3 / (1 + b)), "scan_energy_mae": 0.5 / (1 + b)},
         "general": _metrics(0.01 * (1 + 0.01 * b), 0.1 * (1 + 0.02 * b))}
        for b in (0, 5, 10)
    ]
    points += [{"model": "mace", "family": "mace", "model_name": "mace-emt-small", "budget": b,
                "test": _metrics(0.03, 0.2 - 0.01 * b)} for b in (0, 10)]
    return learning_curves(points)


def test_learning_curve_table_and_plots(tmp_path):
    from aiida_reactmlip.report.finetune_report import (
        format_table,
        plot_forgetting,
        plot_learning_curves,
        to_csv,
        to_markdown,
    )

    curves = _curves()
    head, cells = format_table(curves["rows"])
    assert head[:4] == ["model", "DFT labels", "E MAE (meV/atom)", "E gain (%)"]
    row = dict(zip(head, cells[1]))  # chgnet at 5 labels
    assert row["F MAE (meV/Å)"] == "50.0" and row["F gain (%)"] == "+83"
    assert row["scan ΔE MAE (meV)"] == "83"
    assert row["general F change (%)"] == "+10"
    assert dict(zip(head, cells[3]))["general F MAE (meV/Å)"] == "-"  # MACE has no general set here
    assert "barrier MAE (meV)" not in head  # no path in the test set
    markdown = to_markdown(curves["rows"], title="t")
    assert markdown.count("\n| ") == 6  # header + 5 rows
    lines = to_csv(curves["rows"]).splitlines()
    assert len(lines) == 6 and "force_mae_gain" in lines[0]
    png = b"\x89PNG\r\n\x1a\n"
    assert plot_learning_curves(curves, tmp_path / "lc.png").read_bytes()[:8] == png
    assert plot_forgetting(curves, tmp_path / "f.png").read_bytes()[:8] == png
    no_general = learning_curves([{"model": "m", "budget": 0, "test": _metrics(0.1, 0.1)}])
    assert plot_forgetting(no_general, tmp_path / "none.png") is None
