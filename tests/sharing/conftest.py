"""Fixtures for sharing: a small stored dataset, a stock optimade server in a subprocess, CLI helper."""

import contextlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from click.testing import CliRunner

from aiida_reactmlip.frames import Frames


def invoke(*args):
    from aiida_reactmlip.cli import cmd_root, cmd_share  # noqa: F401  (registers the sharing commands)

    return CliRunner().invoke(cmd_root, [str(a) for a in args], env={"COLUMNS": "200"})


def make_frames():
    """Four frames: H2 in a periodic box (with stress), H2O without a cell; awkward floats on purpose."""
    images = []
    for i, d in enumerate([0.7, 0.74, 0.8]):
        atoms = Atoms("H2", positions=[[0.1, 0.2, 0.3], [0.1, 0.2, 0.3 + d]], cell=[6, 6.5, 7], pbc=True)
        atoms.calc = SinglePointCalculator(
            atoms, energy=-31.5 + 0.123456789012345 * i,
            forces=[[1e-17, -2.5e-3, 1.0 / 3.0 + i], [-1e-17, 2.5e-3, -1.0 / 3.0 - i]],
            stress=np.array([0.1, 0.2, 0.3, 0.01, 0.02, 0.03]) / 7.0 * (i + 1))
        atoms.info.update({"name": f"h2-{d}", "system": "h2-dissociation", "role": "scan", "bond": d,
                           "source_uuid": f"00000000-0000-4000-8000-00000000000{i}"})
        images.append(atoms)
    water = Atoms("OH2", positions=[[0, 0, 0], [0.757, 0.586, 0], [-0.757, 0.586, 0]], pbc=False)
    water.calc = SinglePointCalculator(water, energy=-466.0987654321, forces=[[0, -0.2, 0], [0.1, 0.1, 0], [-0.1, 0.1, 0]])
    water.info.update({"name": "water", "system": "water-split", "role": "initial"})
    images.append(water)
    return Frames.from_atoms(images)


def free_port():
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def stock_server(*args):
    """Run ``python -m aiida_reactmlip.sharing.stock_server ARGS`` on a free loopback port; yield its URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "aiida_reactmlip.sharing.stock_server", *map(str, args),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/v1/info", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.poll() is not None else ""
                raise RuntimeError(f"stock optimade server did not start: {output[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def stored_dataset(aiida_profile):
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    node = LabelledDatasetData(frames=make_frames())
    node.label = "sharing-test"
    return node.store()
