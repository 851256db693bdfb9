"""Round trip between two profiles: our OPTIMADE server (this profile) -> `reactmlip dataset import-optimade`
in a second, fresh profile -> `reactmlip dataset export` -> identical energies, forces, positions."""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np

from aiida_reactmlip.frames import read_extxyz

BIN = pathlib.Path(sys.executable).parent


def test_import_from_our_server_into_another_profile(loopback_server, datasets, tmp_path):
    env = {**os.environ, "AIIDA_PATH": str(tmp_path / "other"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("REACTMLIP_PROFILE", None)
    create = subprocess.run(
        [sys.executable, "-c", "from aiida_reactmlip.provision import ensure_profile; ensure_profile('other')"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert create.returncode == 0, create.stderr[-2000:]
    dataset_uuid = datasets["cu"].uuid
    imported = subprocess.run(
        [str(BIN / "reactmlip"), "-p", "other", "dataset", "import-optimade", loopback_server,
         f'_reactmlip_dataset_uuid="{dataset_uuid}"'],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert imported.returncode == 0, imported.stdout[-2000:] + imported.stderr[-2000:]
    pk = re.search(r"LabelledDatasetData<(\d+)>", imported.stdout)
    assert pk, imported.stdout
    out = tmp_path / "copy.extxyz"
    exported = subprocess.run([str(BIN / "reactmlip"), "-p", "other", "dataset", "export", pk.group(1), str(out)],
                              env=env, capture_output=True, text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr[-2000:]

    original = datasets["cu"].frames
    copy = read_extxyz(out)
    assert len(copy) == len(original) == 3
    # Frames may come back in server order: match them by name.
    order = [next(j for j, info in enumerate(copy.info) if info.get("name") == name)
             for name in (info["name"] for info in original.info)]
    copy = copy.subset(order)
    assert np.array_equal(copy.energies, original.energies)
    assert np.array_equal(copy.forces, original.forces)
    assert np.array_equal(copy.positions, original.positions)
    assert np.array_equal(copy.numbers, original.numbers)
    assert np.array_equal(copy.stress, original.stress, equal_nan=True)  # two slabs with stress, one without
    assert np.array_equal(copy.cells, original.cells)
