"""MLIP MD speed through ``reactmlip-runner md`` (CHGNet 0.3.0): steps per second by system size and torch threads.

The numbers docs/exploration.md ("Numbers measured here") quotes, regenerated on an idle machine:

- **steps/s**: one Langevin trajectory per system, run by the runner as a fresh process (``reactmlip-runner md``,
  the path of ``reactmlip.md``), with 1 and 2 torch threads (``num_threads``), in interleaved rounds (the order
  of the thread counts reversed every other round); ``steps_per_second`` of the runner's report (MD only, model
  load apart) and the model load the runner logged;
- **energy + forces vs with stress**: one CHGNet call on the 37-atom slab through the runner's MD calculator
  (``task="ef"``) against the plain calculator with stress, median of repeated calls in one process;
- **the example's committee**: the runnable example of docs/exploration.md (H on Cu(111), 800 K, 200 steps,
  every 10th frame kept: 20 frames), its committee force std (eV/Å) of CHGNet 0.3.0, CHGNet 0.2.0 and SevenNet-0
  and what each selection strategy picks from it (k = 4, seed 0).

    .venv/bin/python -m benchmarks md_speed                    # benchmarks/results/md_speed.json
    .venv/bin/python -m benchmarks.md_speed --write-docs       # also docs/results/md-speed.json + the table
    .venv/bin/python -m benchmarks.md_speed --docs-only        # the table from the committed JSON
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import DEFAULT_WAIT_IDLE, machine_info, wait_for_idle

NAME = "md_speed"
DESCRIPTION = "MLIP MD steps/s through reactmlip-runner md (CHGNet 0.3.0) by system size and torch threads"
DEFAULT_FRAMES = 40  # MD steps per trajectory
DEFAULT_REPEAT = 2
THREADS = (1, 2)
MODEL = "chgnet-0.3.0"
COMMITTEE = ("chgnet-0.3.0", "chgnet-0.2.0", "sevennet-0")
PICK_STRATEGIES = ("random", "committee", "fps", "committee+fps")
COMMAND = "python -m benchmarks.md_speed --write-docs"
BLOCK = "md-speed"


def systems() -> dict[str, tuple[Any, dict[str, Any]]]:
    """name -> (start frame, MD settings besides steps and threads)."""
    from ase import Atoms
    from ase.build import add_adsorbate, fcc111

    h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    cu4 = Atoms("Cu4", positions=[[0, 0, 0], [2.5, 0, 0], [1.25, 2.165, 0], [1.25, 0.72, 2.04]])
    h_cu = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    add_adsorbate(h_cu, "H", 1.0, "fcc")
    o_cu = fcc111("Cu", size=(3, 3, 4), vacuum=6.0)
    add_adsorbate(o_cu, "O", 1.3, "fcc")
    return {
        "H2 (2 atoms, boxed), 600 K": (h2, {"temperature_K": 600.0}),
        "Cu4 cluster (4 atoms), 300 K": (cu4, {"temperature_K": 300.0}),
        "H on Cu(111) 2x2x3 (13 atoms, 4 fixed), 800 K": (h_cu, {"temperature_K": 800.0, "fixed_atoms": [0, 1, 2, 3]}),
        "O on Cu(111) 3x3x4 (37 atoms, 18 fixed), 500 K": (o_cu, {"temperature_K": 500.0,
                                                                  "fixed_atoms": list(range(18))}),
    }


def run_runner_md(directory: Path, atoms, settings: dict[str, Any]) -> dict[str, Any]:
    """``reactmlip-runner md`` on ``atoms`` in ``directory``: its report's totals and model load seconds."""
    from aiida_reactmlip.frames import Frames, write_extxyz

    directory.mkdir(parents=True, exist_ok=True)
    write_extxyz(Frames.from_atoms([atoms]), directory / "frames.extxyz")
    (directory / "input.json").write_text(json.dumps({"family": "chgnet", "model_name": MODEL,
                                                      "frames_file": "frames.extxyz", "save_every": 10, **settings}))
    runner = Path(sys.executable).parent / "reactmlip-runner"
    done = subprocess.run([str(runner), "md", "--input", "input.json"], cwd=directory, capture_output=True, text=True,
                          check=False, env={**os.environ, "OMP_NUM_THREADS": str(settings["num_threads"])})
    if done.returncode != 0:
        raise RuntimeError(f"reactmlip-runner md failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads((directory / "report.json").read_text())
    return {"steps_per_second": report["steps_per_second"], "steps_done": report["steps_done"],
            "max_temperature_K": report["max_temperature_K"], "model_load_seconds": report["model_load_seconds"]}


def stress_cost(repeat: int = 7) -> dict[str, Any]:
    """Median seconds of one CHGNet call on the 37-atom slab: energy + forces (the MD calculator) and with stress."""
    import torch

    from aiida_reactmlip.models import load_calculator, locate_model_file
    from aiida_reactmlip.runner.md import energy_forces_calculator

    torch.set_num_threads(1)
    atoms = systems()["O on Cu(111) 3x3x4 (37 atoms, 18 fixed), 500 K"][0].copy()
    atoms.rattle(0.05, seed=2)
    atoms.pbc = True  # periodic with vacuum, as plane-wave DFT sees a slab: the model gives a stress
    calc = load_calculator("chgnet", locate_model_file(MODEL))
    ef = energy_forces_calculator(calc)
    seconds: dict[str, list[float]] = {"energy_forces": [], "with_stress": []}
    for index in range(repeat + 1):
        for way in (("energy_forces", "with_stress") if index % 2 == 0 else ("with_stress", "energy_forces")):
            calc.reset()  # same positions every call: without a reset ASE would hand back the cached results
            ef.reset()
            probe = atoms.copy()
            probe.calc = ef if way == "energy_forces" else calc
            start = time.perf_counter()
            probe.get_forces()
            if way == "with_stress":
                probe.get_stress()
            if index:  # the first round warms up
                seconds[way].append(time.perf_counter() - start)
    median = {way: statistics.median(values) for way, values in seconds.items()}
    return {"seconds": seconds, "median_seconds": median, "torch_threads": 1,
            "saving_fraction": 1 - median["energy_forces"] / median["with_stress"]}


def example_committee(directory: Path) -> dict[str, Any]:
    """The exploration.md example: H on Cu(111), 800 K, 200 steps of 0.5 fs, every 10th frame; committee force std."""
    from aiida_reactmlip.frames import read_frames
    from aiida_reactmlip.models import get_model_spec, load_calculator, locate_model_file
    from aiida_reactmlip.selection import committee_force_std, select

    atoms = systems()["H on Cu(111) 2x2x3 (13 atoms, 4 fixed), 800 K"][0].copy()
    atoms.info["name"] = "h-cu111"
    md = run_runner_md(directory, atoms, {"ensemble": "langevin", "temperature_K": 800.0, "timestep_fs": 0.5,
                                          "n_steps": 200, "fixed_atoms": [0, 1, 2, 3], "seed": 1, "num_threads": 1})
    images = read_frames(directory / "trajectory.extxyz").to_atoms()
    forces = []
    for name in COMMITTEE:
        calc = load_calculator(get_model_spec(name).family, locate_model_file(name))
        per_model = []
        for frame in images:
            frame = frame.copy()
            frame.calc = calc
            per_model.append(frame.get_forces())
        forces.append(per_model)
    std = np.asarray(committee_force_std(forces), dtype=float)
    picks = {strategy: [int(i) for i in select(strategy, 4, pool_images=images, committee_forces=forces, seed=0)]
             for strategy in PICK_STRATEGIES}
    return {"n_frames": len(images), "max_temperature_K": md["max_temperature_K"], "models": list(COMMITTEE),
            "committee_force_std": std.tolist(), "min": float(std.min()), "max": float(std.max()),
            "picks": {strategy: {"frames": chosen, "mean_std": float(std[chosen].mean())}
                      for strategy, chosen in picks.items()}}


def run(frames: int | None = None, console=None, wait_idle: float = DEFAULT_WAIT_IDLE, repeat: int | None = None,
        **_: Any) -> dict[str, Any]:
    n_steps = int(frames or DEFAULT_FRAMES)
    rounds = int(repeat or DEFAULT_REPEAT)
    log = console.log if console is not None else print
    info = machine_info()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="reactmlip-md-speed-") as tmp:
        for s, (name, (atoms, settings)) in enumerate(systems().items()):
            busy = wait_for_idle(wait_idle, log=log)
            runs: dict[str, list] = {str(t): [] for t in THREADS}
            for k in range(rounds):
                for threads in (THREADS if k % 2 == 0 else THREADS[::-1]):
                    outcome = run_runner_md(Path(tmp) / f"{s}-{k}-{threads}", atoms,
                                            {**settings, "n_steps": n_steps, "seed": k, "num_threads": threads})
                    runs[str(threads)].append(outcome)
                    log(f"md_speed: {name}, {threads} thread(s): {outcome['steps_per_second']:.2f} steps/s")
            results[name] = {"n_atoms": len(atoms), "runs": runs, "cpu_busy_fraction_before": busy,
                             "steps_per_second_median": {t: statistics.median(r["steps_per_second"] for r in v)
                                                         for t, v in runs.items()}}
        wait_for_idle(wait_idle, log=log)
        stress = stress_cost()
        log(f"md_speed: one CHGNet call, 37 atoms: {stress['median_seconds']}")
        committee = example_committee(Path(tmp) / "example")
        log(f"md_speed: example committee force std {committee['min']:.2f}-{committee['max']:.2f} eV/Å")
    loads = [r["model_load_seconds"] for v in results.values() for runs in v["runs"].values() for r in runs
             if r["model_load_seconds"] is not None]
    return {"benchmark": NAME, "description": DESCRIPTION, "machine": info,
            "parameters": {"model": MODEL, "n_steps": n_steps, "rounds": rounds, "threads": list(THREADS),
                           "ensemble": "langevin", "timestep_fs": 0.5, "save_every": 10},
            "results": results, "stress_cost": stress, "example_committee": committee,
            "model_load_seconds_median": statistics.median(loads) if loads else None}


HEADER = ["system", "steps/s, 1 torch thread (median)", "steps/s, 2 torch threads (median)", "2 threads / 1 thread",
          "rounds (1 / 2 threads)"]


def render_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, r in result["results"].items():
        one, two = r["steps_per_second_median"]["1"], r["steps_per_second_median"]["2"]
        rounds = " / ".join(", ".join(f"{x['steps_per_second']:.2f}" for x in r["runs"][t]) for t in ("1", "2"))
        rows.append([name, f"{one:.2f}", f"{two:.2f}", f"{two / one:.2f}", rounds])
    return rows


def render(result: dict[str, Any], console) -> None:
    from ._docs_run import print_table

    print_table(f"MD speed ({result['parameters']['model']}, reactmlip-runner md)", HEADER, render_rows(result), console)


def render_markdown(record: dict[str, Any]) -> str:
    """The ``md-speed`` block of docs/exploration.md from its JSON."""
    from aiida_reactmlip.report.docs_blocks import markdown_table

    params, prov = record["parameters"], record["provenance"]
    stress, committee = record["stress_cost"], record["example_committee"]
    busy = [r["cpu_busy_fraction_before"].get("busy_fraction") for r in record["results"].values()]
    busy = [b for b in busy if b is not None]
    median = stress["median_seconds"]
    return "\n".join([
        (f"`{prov['command']}` ({prov['generated']}, commit {(prov['git_commit'] or '?')[:7]}): "
         f"{prov['machine']['logical_cores']} cores, CPUs at most {100 * max(busy or [0]):.0f} % busy before each "
         f"system, load {' / '.join(map(str, prov['load_average']))} at the end; {params['model']}, Langevin, "
         f"{params['n_steps']} steps of {params['timestep_fs']} fs per trajectory, {params['rounds']} interleaved "
         "rounds, each run a fresh `reactmlip-runner md` process (steps/s of its report: MD only, model load apart)."),
        "",
        markdown_table(HEADER, render_rows(record)),
        "",
        f"- Model load in the runner (CHGNet 0.3.0, a fresh process): median {record['model_load_seconds_median']:.1f} s.",
        (f"- Energy + forces only (the MD calculator, `task=\"ef\"`) against energy, forces and stress, 37-atom slab, "
         f"one call, 1 thread: median {1000 * median['energy_forces']:.0f} ms vs {1000 * median['with_stress']:.0f} ms: "
         "skipping the "
         f"stress saves {100 * stress['saving_fraction']:.0f} % per step."),
        (f"- The example above ({committee['n_frames']} frames, max temperature {committee['max_temperature_K']:.0f} K):"
         f" committee force std of {', '.join(committee['models'])} between **{committee['min']:.2f} and "
         f"{committee['max']:.2f} eV/Å** per frame. Picks (k = 4, seed 0), with the mean std of the picked frames: "
         + "; ".join(f"{strategy} {pick['frames']} ({pick['mean_std']:.3f} eV/Å)"
                     for strategy, pick in committee["picks"].items()) + "."),
    ])


def main() -> None:
    import sys

    from aiida_reactmlip.report.docs_blocks import REPO_ROOT

    from ._docs_run import benchmark_docs_main

    benchmark_docs_main(__doc__, sys.modules[__name__], REPO_ROOT / "docs" / "results" / "md-speed.json",
                        REPO_ROOT / "docs" / "exploration.md",
                        {"frames": (int, DEFAULT_FRAMES, f"MD steps (default {DEFAULT_FRAMES})"),
                         "repeat": (int, DEFAULT_REPEAT, "interleaved rounds (default 2)")})


if __name__ == "__main__":
    main()
