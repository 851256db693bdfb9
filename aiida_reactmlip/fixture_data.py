"""DFT-labelled fixture datasets shipped in ``fixtures/datasets`` (pure: ASE + numpy, no AiiDA).

``fixtures/make_dft_pools.py`` makes them with real pw.x through ``reactmlip.label``; each
``<name>.extxyz`` has a sidecar ``<name>.json`` saying how (pw.x version, protocol, pseudopotentials,
cutoffs, date, uuids of the LabelWorkChain and dataset nodes, pw.x wall times, zero-shot errors).

- ``ch4-dissociation-pool``: the reactive pool of the fine-tuning study and the active-learning loop
  (CH4 -> CH3 + H; bond scans and rattled copies, ``info["group"]`` for leak-free splits).
- ``general-reference-set``: bulk metals, gas molecules, a clean slab: the "forgetting" set.

Energies in eV, forces in eV/Å, stress in eV/Å^3. As an AiiDA node:
``LabelledDatasetData.from_extxyz(fixture_path(name))``.
"""

from __future__ import annotations

import json
import os
import pathlib

__all__ = [
    "FIXTURES_DIR_ENV",
    "GENERAL_FIXTURE",
    "POOL_FIXTURE",
    "fixture_metadata",
    "fixture_path",
    "fixtures_dir",
    "list_fixture_datasets",
    "load_fixture_dataset",
]

#: Environment variable naming another folder of fixture datasets (e.g. for an installed, non-editable package).
FIXTURES_DIR_ENV = "REACTMLIP_FIXTURES_DIR"
POOL_FIXTURE = "ch4-dissociation-pool"
GENERAL_FIXTURE = "general-reference-set"


def fixtures_dir() -> pathlib.Path:
    """The folder of the fixture datasets: ``$REACTMLIP_FIXTURES_DIR``, else ``fixtures/datasets`` of this checkout."""
    env = os.environ.get(FIXTURES_DIR_ENV)
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "datasets"


def list_fixture_datasets() -> list[str]:
    """Names of the fixture datasets present (``<name>.extxyz`` files), sorted."""
    folder = fixtures_dir()
    return sorted(p.stem for p in folder.glob("*.extxyz")) if folder.is_dir() else []


def fixture_path(name: str) -> pathlib.Path:
    """Path of the extxyz file of fixture ``name``; FileNotFoundError listing those present and how to make them."""
    path = fixtures_dir() / f"{name}.extxyz"
    if not path.is_file():
        present = ", ".join(list_fixture_datasets()) or "none"
        raise FileNotFoundError(
            f"no fixture dataset {name!r} in {path.parent} (present: {present}); make it with "
            "`.venv/bin/python fixtures/make_dft_pools.py` or point $REACTMLIP_FIXTURES_DIR at a folder holding it"
        )
    return path


def load_fixture_dataset(name: str) -> list:
    """The labelled configurations of fixture ``name`` as ASE Atoms, in file order.

    Each has a ``SinglePointCalculator`` with the DFT ``energy`` (eV), ``forces`` (eV/Å) and, for bulk,
    ``stress`` (eV/Å^3), and ``info`` with at least ``system``, ``group`` and ``name``. Floats are exact
    (the project's extxyz writer keeps every digit).
    """
    from aiida_reactmlip.frames import read_extxyz

    return read_extxyz(fixture_path(name)).to_atoms()


def fixture_metadata(name: str) -> dict:
    """The sidecar JSON of fixture ``name``: how its labels were made (see the module docstring)."""
    path = fixture_path(name).with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"fixture {name!r} has no sidecar {path.name}; re-make it with fixtures/make_dft_pools.py")
    return json.loads(path.read_text())
