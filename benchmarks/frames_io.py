"""Benchmark ``frames_io``: the exact extxyz writer/reader and ``LabelledDatasetData`` store/load.

F labelled frames (default 2000) of 40 atoms (Cu(111) 2x5x4 slab, rattled; energy, forces and stress
labels, a ``source_uuid`` per frame), timed ``repeat`` times each (min and median reported):

- ``Frames.from_atoms`` (ASE Atoms -> concatenated arrays) and ``Frames.to_atoms``
- ``write_extxyz`` to a file and ``read_extxyz`` back (checked identical, bit for bit)
- ``write_frames_npz`` and ``read_frames_npz``: the frames archive the CalcJobs hand the runner (checked
  identical)
- ``LabelledDatasetData(frames)`` (validation + arrays), ``.store()`` into a throw-away SQLite profile,
  and loading it again: ``load_node(pk).frames`` (checked identical)
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from typing import Any

import numpy as np

from ._common import DEFAULT_WAIT_IDLE, fmt_s, machine_info, repeat_timed, summarize, temporary_profile, wait_for_idle

NAME = "frames_io"
DESCRIPTION = "exact extxyz write/read and LabelledDatasetData store/load (2000 frames x 40 atoms)"
DEFAULT_FRAMES = 2000
DEFAULT_REPEAT = 3
SEED = 7


def build_frames(n_frames: int, seed: int = SEED) -> list:
    """Labelled 40-atom slab frames (SinglePointCalculator with energy, forces, stress)."""
    from ase.build import fcc111
    from ase.calculators.singlepoint import SinglePointCalculator

    slab = fcc111("Cu", size=(2, 5, 4), vacuum=7.0)
    slab.pbc = True
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n_frames):
        atoms = slab.copy()
        atoms.positions = atoms.positions + rng.normal(0.0, 0.05, size=atoms.positions.shape)
        atoms.info["source_uuid"] = f"{int(rng.integers(0, 2**63)):016x}-{i:06d}"
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=float(-150.0 + rng.normal()),
            forces=rng.normal(0.0, 0.5, size=(len(atoms), 3)),
            stress=rng.normal(0.0, 1e-3, size=6),
        )
        images.append(atoms)
    return images


def run(frames: int | None = None, repeat: int | None = None, console=None,
        wait_idle: float = DEFAULT_WAIT_IDLE, **_: Any) -> dict[str, Any]:
    n_frames = int(frames or DEFAULT_FRAMES)
    repeat = int(repeat or DEFAULT_REPEAT)
    log = console.log if console is not None else print
    info = machine_info()
    temporary_profile()

    from aiida import orm

    from aiida_reactmlip.data.dataset import LabelledDatasetData
    from aiida_reactmlip.frames import Frames, read_extxyz, read_frames_npz, write_extxyz, write_frames_npz

    images = build_frames(n_frames)
    n_atoms = len(images[0])
    log(f"frames_io: {n_frames} frames x {n_atoms} atoms, {repeat} runs each")
    info["wait_for_idle"] = wait_for_idle(wait_idle, log=log)

    steps: dict[str, dict[str, Any]] = {}
    # the unstored nodes built by the timed constructor make aiida-core's SQLAlchemy session warn
    # ("Object of type <DbNode> not in session") on the next autoflush: harmless
    warnings.filterwarnings("ignore", message=r"Object of type <DbNode> not in session")

    seconds, frames = repeat_timed(lambda: Frames.from_atoms(images), repeat)
    steps["Frames.from_atoms"] = summarize(seconds)
    seconds, _ = repeat_timed(frames.to_atoms, repeat)
    steps["Frames.to_atoms"] = summarize(seconds)

    formats = {"extxyz": ("frames.extxyz", write_extxyz, read_extxyz),
               "frames_npz": ("frames.npz", write_frames_npz, read_frames_npz)}
    file_bytes, identical = {}, {}
    with tempfile.TemporaryDirectory(prefix="reactmlip-bench-") as tmp:
        for name, (filename, write, read) in formats.items():
            path = os.path.join(tmp, filename)
            seconds, _ = repeat_timed(lambda write=write, path=path: write(frames, path), repeat)
            steps[f"write_{name}"] = summarize(seconds)
            file_bytes[name] = os.path.getsize(path)
            seconds, back = repeat_timed(lambda read=read, path=path: read(path), repeat)
            steps[f"read_{name}"] = summarize(seconds)
            identical[name] = bool(back.identical(frames))

    seconds, _ = repeat_timed(lambda: LabelledDatasetData(frames=frames), repeat)
    steps["LabelledDatasetData(frames)"] = summarize(seconds)

    nodes, seconds = [], []
    for _ in range(repeat):  # one unstored node at a time: time .store() alone
        node = LabelledDatasetData(frames=frames)
        start = time.perf_counter()
        node.store()
        seconds.append(time.perf_counter() - start)
        nodes.append(node)
    steps["LabelledDatasetData.store"] = summarize(seconds)

    pk = nodes[-1].pk
    seconds, loaded = repeat_timed(lambda: orm.load_node(pk).frames, repeat)
    steps["load_node(pk).frames"] = summarize(seconds)
    node_identical = bool(loaded.identical(frames))
    repository_bytes = sum(
        len(nodes[-1].base.repository.get_object_content(name, mode="rb"))
        for name in nodes[-1].base.repository.list_object_names()
    )

    for step in steps.values():
        step["frames_per_s"] = n_frames / step["min_s"] if step["min_s"] > 0 else float("inf")

    return {
        "benchmark": NAME,
        "description": DESCRIPTION,
        "machine": info,
        "parameters": {
            "n_frames": n_frames,
            "n_atoms_per_frame": n_atoms,
            "repeat": repeat,
            "labels": "energy, forces, stress; info source_uuid",
        },
        "results": {
            "steps": steps,
            "extxyz_file_bytes": file_bytes["extxyz"],
            "node_repository_bytes": repository_bytes,
            "npz_file_bytes": file_bytes["frames_npz"],
            "extxyz_roundtrip_identical": identical["extxyz"],
            "npz_roundtrip_identical": identical["frames_npz"],
            "node_roundtrip_identical": node_identical,
        },
        "ok": all(identical.values()) and node_identical,
    }


def render(result: dict[str, Any], console) -> None:
    from rich.table import Table

    params, res = result["parameters"], result["results"]
    n = params["n_frames"]
    table = Table(
        title=(
            f"frames_io: {n} frames x {params['n_atoms_per_frame']} atoms, best/median of {params['repeat']}, "
            f"{result['machine']['cpu_count']} CPU cores"
        ),
        title_justify="left",
    )
    table.add_column("step")
    for column in ("min s", "median s", "ms/frame (min)", "frames/s"):
        table.add_column(column, justify="right")
    for step, s in res["steps"].items():
        table.add_row(step, fmt_s(s["min_s"], 3), fmt_s(s["median_s"], 3), f"{1000 * s['min_s'] / n:.3f}",
                      f"{s['frames_per_s']:,.0f}")
    console.print(table)
    busy = (result["machine"].get("wait_for_idle") or {}).get("busy_fraction")
    if busy is not None and busy > 0.2:
        console.print(f"[yellow]note: other processes kept the CPUs {100 * busy:.0f}% busy just before measuring: "
                      "timings are slower and noisier than on an idle machine[/]")
    console.print(
        f"extxyz file {res['extxyz_file_bytes'] / 1e6:.1f} MB, frames archive {res['npz_file_bytes'] / 1e6:.1f} MB, "
        f"node repository {res['node_repository_bytes'] / 1e6:.1f} MB; "
        f"round trips identical: extxyz {'yes' if res['extxyz_roundtrip_identical'] else '[bold red]NO[/]'}, "
        f"npz {'yes' if res['npz_roundtrip_identical'] else '[bold red]NO[/]'}, "
        f"node {'yes' if res['node_roundtrip_identical'] else '[bold red]NO[/]'}"
    )
