"""`reactmlip report PK`: the folder, and the HTML page opened in headless Chromium."""

import os
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from aiida_reactmlip.cli import cmd_root

pytestmark = [pytest.mark.pwx, pytest.mark.mlip]


def chromium_executable() -> str:
    """Debian's Chromium; installed here as this test's own set-up when missing."""
    path = shutil.which("chromium")
    if path is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, timeout=900,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        path = shutil.which("chromium")
    assert path, "chromium could not be installed"
    return path


@pytest.fixture(scope="module")
def benchmark_node(h2_benchmark):
    assert h2_benchmark.is_finished_ok, h2_benchmark.exit_message
    return h2_benchmark


def test_report_folder_and_browser(benchmark_node, tmp_path):
    result = CliRunner().invoke(cmd_root, ["report", str(benchmark_node.pk), "--output", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "r"
    names = {p.name for p in folder.iterdir()}
    assert {"index.html", "leaderboard.md", "leaderboard.csv", "dataset.extxyz", "energy_parity.png",
            "force_parity.png", "energy_profile_h2-dissociation_H2.png"} <= names
    markdown = (folder / "leaderboard.md").read_text()
    assert "chgnet-0.3.0" in markdown and "sevennet-0" in markdown

    chromium = chromium_executable()
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000", "--dump-dom",
         (folder / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    total = re.search(r'data-images-total="(\d+)"', dom)
    assert loaded and total, dom[:2000]
    assert int(total.group(1)) == 3  # one energy profile, energy parity, force parity
    assert loaded.group(1) == total.group(1)  # every plot decoded by the browser
    assert "chgnet-0.3.0" in dom and "sevennet-0" in dom


def test_report_refuses_other_nodes():
    from aiida import orm

    node = orm.Int(1).store()
    result = CliRunner().invoke(cmd_root, ["report", str(node.pk)])
    assert result.exit_code != 0 and "not a reactmlip.benchmark WorkChain" in result.output
