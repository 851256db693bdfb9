"""Fixtures of the OPTIMADE tests: a few labelled datasets (H2, Cu fragments with O) and the app."""

import socket
import threading
import time

import numpy as np
import pytest


def _labelled(atoms, energy, forces=None, stress=None, **info):
    from ase.calculators.singlepoint import SinglePointCalculator

    results = {"energy": energy, "forces": forces if forces is not None else np.zeros((len(atoms), 3))}
    if stress is not None:
        results["stress"] = np.asarray(stress, dtype=float)
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info.update(info)
    return atoms


def make_h2_images():
    """Three H2 molecules (no cell), energies -31.2, -31.5, -30.9 eV (float labels)."""
    from ase import Atoms

    images = []
    for i, (d, e) in enumerate([(0.70, -31.2), (0.74, -31.5), (0.90, -30.9)]):
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, d]], pbc=False)
        forces = np.array([[0, 0, -0.5 + i], [0, 0, 0.5 - i]], dtype=float)
        images.append(_labelled(atoms, e, forces, system="h2-dissociation", role="scan", name=f"h2_{i}"))
    return images


def make_cu_o_images():
    """Cu(111) 2x2x2 slab (8 Cu), the same + O adatom (Cu8O), and a Cu2O fragment in a box."""
    from ase import Atoms
    from ase.build import add_adsorbate, fcc111

    slab = fcc111("Cu", (2, 2, 2), vacuum=5.0)
    slab_o = slab.copy()
    add_adsorbate(slab_o, "O", 1.2, "fcc")
    frag = Atoms("Cu2O", positions=[[0, 0, 0], [2.4, 0, 0], [1.2, 1.0, 0]], cell=[8, 8, 8], pbc=True)
    rng = np.random.default_rng(7)
    return [
        _labelled(slab, -120.0, rng.normal(0, 0.05, (8, 3)), np.arange(6) * 1e-3, system="cu-o", role="initial",
                  name="slab"),
        _labelled(slab_o, -125.5, rng.normal(0, 0.05, (9, 3)), np.arange(6) * 2e-3, system="cu-o", role="final",
                  name="slab_o"),
        _labelled(frag, -40.25, rng.normal(0, 0.05, (3, 3)), None, system="cu-o", role="md", name="cu2o"),
    ]


@pytest.fixture(scope="module")
def datasets(aiida_profile):
    """Two stored LabelledDatasetData: H2 (3 frames) and Cu/O (3 frames)."""
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    h2 = LabelledDatasetData.from_atoms(make_h2_images())
    h2.label = "h2 optimade test"
    h2.store()
    cu = LabelledDatasetData.from_atoms(make_cu_o_images())
    cu.label = "cu-o optimade test"
    cu.store()
    return {"h2": h2, "cu": cu}


@pytest.fixture(scope="module")
def app(datasets):
    from aiida_reactmlip.optimade.app import create_reactmlip_app

    return create_reactmlip_app()


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://example.org") as test_client:
        yield test_client


def ours(response_json, datasets):
    """The entries of a response that belong to the datasets of this module (the profile is shared)."""
    uuids = {node.uuid for node in datasets.values()}
    return [e for e in response_json["data"] if e["attributes"]["_reactmlip_dataset_uuid"] in uuids]


@pytest.fixture
def our_entries(datasets):
    """``our_entries(response_json)``: the entries of this module's datasets."""
    return lambda body: ours(body, datasets)


@pytest.fixture
def h2_images():
    return make_h2_images


@pytest.fixture
def loopback_server(app):
    """uvicorn serving the app on a free 127.0.0.1 port in a thread of this process (same profile)."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
