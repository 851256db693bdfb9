"""`make demo`'s main job end to end on a fresh SQLite profile: setup, then `reactmlip demo`."""

import csv
import os
import pathlib
import subprocess
import sys

import pytest

from aiida_reactmlip.report.evidence import RECORD_ENV, allowed_range, regression_entry

pytestmark = [pytest.mark.slow, pytest.mark.pwx, pytest.mark.mlip]

BIN = pathlib.Path(sys.executable).parent
#: Records the demo's errors in docs/results/regression-values.json (tests/workflows/test_benchmark.py compares too).
RECORD = f"{RECORD_ENV}=1 .venv/bin/python -m pytest -p no:cacheprovider tests/test_demo.py"


def test_demo_prints_the_error_table_and_writes_results(tmp_path):
    env = {**os.environ, "AIIDA_PATH": str(tmp_path / "aiida"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    setup = subprocess.run([str(BIN / "reactmlip"), "setup"], env=env, capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, setup.stderr[-3000:]
    demo = subprocess.run([str(BIN / "reactmlip"), "-p", "reactmlip", "demo", "--output", str(tmp_path / "out")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    assert "Zero-shot error against pw.x" in out
    assert "chgnet-0.3.0" in out and "sevennet-0" in out
    assert "BenchmarkWorkChain pk" in out
    for name in ("leaderboard.md", "leaderboard.csv", "dataset.extxyz", "energy_profile_h2-dissociation_H2.png",
                 "energy_parity.png", "force_parity.png", "index.html"):
        path = tmp_path / "out" / name
        assert path.exists() and path.stat().st_size > 0, name
    rows = list(csv.DictReader((tmp_path / "out" / "leaderboard.csv").open()))
    assert {row["model"] for row in rows} == {"chgnet-0.3.0", "sevennet-0"}
    for row in rows:
        # within 5 % of the errors this test's own run recorded (eV/Å and eV/atom)
        for key, unit in (("force_mae", "eV/Å"), ("energy_mae_per_atom", "eV/atom")):
            measured = float(row[key])
            recorded = regression_entry(f"h2_scan_{key}/{row['model']}", measured, unit=unit, tolerance=0.05,
                                        tolerance_kind="relative", command=RECORD, test="tests/test_demo.py")
            low, high = allowed_range(recorded)
            assert low <= measured <= high, f"{row['model']} {key} {measured:.5f}, recorded {recorded['value']:.5f}"
        assert row["energy_reference"].startswith("relative")
    # The PNG files are real images.
    assert (tmp_path / "out" / "energy_parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
