"""DFT label throughput: ``reactmlip.label`` (AiiDA, pw.x on localhost) against the same pw.x inputs from a plain loop.

Two sets of frames, labelled at the ``fast`` protocol with Debian's pseudopotentials: the H2 bond scan (7 frames of
2 atoms, ``h2-dissociation``) and Cu slab frames (the adatom hop band of ``cu-adatom-cu111``, 13 atoms; ``--frames``
of them, default 4). For each set:

- **AiiDA path**: ``LabelWorkChain`` as ``reactmlip label`` runs it (every frame a ``PwBaseWorkChain`` submitted at
  once, one pw.x process per job, ``OMP_NUM_THREADS=1``), wall time from the call to the stored dataset;
- **plain loops** over *the same input files* (each job's ``aiida.in`` and pseudopotentials, copied from its
  working directory): all jobs at once, one process each (the AiiDA path's parallelism); as many jobs at a time
  as cores, one process each; one job at a time with ``mpirun -np <cores>`` (MPI inside pw.x).

Labels per hour = frames / wall x 3600. The figure is AiiDA / best plain loop (goal >= 0.95). Every plain run's
total energy must equal its AiiDA twin's (same input, same binary): the check that the loops ran the same work.

    .venv/bin/python -m benchmarks label_throughput            # benchmarks/results/label_throughput.json
    .venv/bin/python -m benchmarks.label_throughput --write-docs   # also docs/results/label-throughput.json + table
    .venv/bin/python -m benchmarks.label_throughput --docs-only    # the docs table from the committed JSON
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import re
import resource
import shutil
import subprocess
import tempfile
import time
from typing import Any

from ._common import DEFAULT_WAIT_IDLE, fmt_s, machine_info, temporary_profile, wait_for_idle

NAME = "label_throughput"
DESCRIPTION = "pw.x labels per hour: reactmlip.label (AiiDA) vs the same inputs from plain loops"
DEFAULT_FRAMES = 4  # Cu slab frames (the H2 scan always has its 7)
GOAL = 0.95
COMMAND = "python -m benchmarks.label_throughput --write-docs"
PW_PROCESS_TYPE = "aiida.calculations:quantumespresso.pw"
ENERGY_LINE = re.compile(r"^!\s+total energy\s+=\s+(-?\d+\.\d+) Ry", re.MULTILINE)


def frame_sets(n_cu: int) -> dict[str, list]:
    """Frames per set: the H2 scan and ``n_cu`` frames of the Cu adatom hop band (initial, images, final)."""
    from aiida_reactmlip.systems import get_system

    h2 = list(get_system("h2-dissociation").configurations)
    band = [a for a in get_system("cu-adatom-cu111").configurations if a.info.get("role") in ("initial", "image", "final")]
    return {"h2-scan": h2, "cu-slab": band[:n_cu]}


def total_energy_ry(text: str) -> float | None:
    """The converged total energy (Ry) of a pw.x output, None when there is none."""
    found = ENERGY_LINE.findall(text)
    return float(found[-1]) if found else None


def _own_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process: the AiiDA engine of the in-process run (pw.x
    runs detached under the ``core.direct`` scheduler, so its CPU is not counted here)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_plain(workdirs: list[pathlib.Path], command: str, jobs_at_once: int, env: dict) -> float:
    """Run ``command`` (``pw.x -in aiida.in > aiida.out``) in every ``workdirs``, ``jobs_at_once`` at a time, as
    a shell loop with ``xargs -P`` would; the wall seconds."""
    def one(workdir: pathlib.Path) -> int:
        return subprocess.run(command, shell=True, cwd=workdir, env=env, check=False).returncode

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs_at_once) as pool:
        codes = list(pool.map(one, workdirs))
    wall = time.perf_counter() - start
    if any(codes):
        raise RuntimeError(f"plain pw.x runs failed with exit codes {codes} in {workdirs[0].parent}")
    return wall


def copy_inputs(remote: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """The input file and pseudopotentials of one pw.x working directory, in a fresh directory."""
    target.mkdir(parents=True)
    shutil.copy2(remote / "aiida.in", target / "aiida.in")
    shutil.copytree(remote / "pseudo", target / "pseudo")
    (target / "out").mkdir()
    return target


def run(frames: int | None = None, console=None, wait_idle: float = DEFAULT_WAIT_IDLE, **_: Any) -> dict[str, Any]:
    n_cu = int(frames or DEFAULT_FRAMES)
    log = console.log if console is not None else print
    info = machine_info()
    temporary_profile()

    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip import provision
    from aiida_reactmlip.workflows.label import LabelWorkChain

    computer = provision.ensure_localhost()
    codes = provision.ensure_codes(computer)
    family = provision.ensure_debian_pseudo_family()
    cores = os.cpu_count() or 1
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    pw = codes["pw"].get_executable()
    mpirun = " ".join(computer.get_mpirun_command()).format(tot_num_mpiprocs=cores, num_cpus=cores,
                                                              mpiprocs_per_machine=cores, num_machines=1)
    serial = f"'{pw}' -in aiida.in > aiida.out 2>&1"
    with_mpi = f"{mpirun} '{pw}' -in aiida.in > aiida.out 2>&1"
    results: dict[str, Any] = {}
    ok = True
    for name, images in frame_sets(n_cu).items():
        structures = {}
        for index, atoms in enumerate(images):
            structures[f"frame_{index:03d}"] = orm.StructureData(ase=atoms).store()
        log(f"{name}: {len(images)} frames of {len(images[0])} atoms")
        idle = wait_for_idle(wait_idle, log=log)
        cpu_start = _own_cpu_seconds()
        start = time.perf_counter()
        _, node = run_get_node(
            LabelWorkChain, structures=structures, pw_code=codes["pw"], pseudo_family=orm.Str(family.label),
            protocol=orm.Str("fast"),
            options=orm.Dict({"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}))
        aiida_wall = time.perf_counter() - start
        engine_cpu = _own_cpu_seconds() - cpu_start
        if not node.is_finished_ok:
            raise RuntimeError(f"LabelWorkChain<{node.pk}> failed: [{node.exit_status}] {node.exit_message}")
        calcs = sorted((n for n in node.called_descendants
                        if n.process_type == PW_PROCESS_TYPE and n.is_finished_ok), key=lambda n: n.pk)
        if not calcs:
            raise RuntimeError(f"LabelWorkChain<{node.pk}> finished without a PwCalculation that finished ok")
        aiida_energies = [total_energy_ry(c.outputs.retrieved.base.repository.get_object_content("aiida.out"))
                          for c in calcs]
        pw_seconds = [c.outputs.output_parameters.get("wall_time_seconds") for c in calcs]
        plain = {}
        with tempfile.TemporaryDirectory(prefix="reactmlip-label-throughput-") as tmp:
            variants = {
                "all at once, 1 process each": (serial, len(calcs)),
                f"{cores} at a time, 1 process each": (serial, cores),
                f"1 at a time, mpirun -np {cores}": (with_mpi, 1),
            }
            for v, (label, (command, at_once)) in enumerate(variants.items()):
                workdirs = [copy_inputs(pathlib.Path(c.outputs.remote_folder.get_remote_path()),
                                        pathlib.Path(tmp) / f"v{v}" / f"{i:03d}") for i, c in enumerate(calcs)]
                wait_for_idle(wait_idle, log=log)
                wall = run_plain(workdirs, command, at_once, env)
                energies = [total_energy_ry((w / "aiida.out").read_text()) for w in workdirs]
                same = all(a is not None and b is not None and abs(a - b) < 1e-6
                           for a, b in zip(aiida_energies, energies))
                ok = ok and same
                plain[label] = {"wall_seconds": wall, "jobs_at_once": at_once, "labels_per_hour": len(calcs) / wall * 3600,
                                "energies_equal_aiida": same}
                log(f"  plain, {label}: {wall:.1f} s")
        best_label = min(plain, key=lambda k: plain[k]["wall_seconds"])
        same_parallelism = plain["all at once, 1 process each"]
        results[name] = {
            "n_frames": len(images), "n_atoms": len(images[0]), "pw_calculations": len(calcs),
            "label_workchain_uuid": node.uuid, "dataset_uuid": node.outputs.dataset.uuid,
            "cpu_busy_fraction_before": idle,
            "aiida": {"wall_seconds": aiida_wall, "labels_per_hour": len(images) / aiida_wall * 3600,
                      "pw_wall_seconds_sum": sum(s for s in pw_seconds if s is not None),
                      "engine_cpu_seconds": engine_cpu, "engine_cpu_seconds_per_job": engine_cpu / len(calcs)},
            "plain": plain,
            "best_plain": best_label,
            "ratio_vs_best_plain": plain[best_label]["wall_seconds"] / aiida_wall,
            "ratio_vs_same_parallelism": same_parallelism["wall_seconds"] / aiida_wall,
        }
        log(f"  AiiDA: {aiida_wall:.1f} s; best plain ({best_label}) {plain[best_label]['wall_seconds']:.1f} s")
    return {
        "benchmark": NAME, "description": DESCRIPTION, "machine": info,
        "parameters": {"protocol": "fast", "pseudo_family": "Debian PBE (reactmlip/debian-pbe)", "cores": cores,
                       "aiida_options": "1 process per job, withmpi False, every job submitted at once",
                       "goal_ratio": GOAL},
        "results": results, "ok": ok,
    }


def render_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, r in result["results"].items():
        rows.append([name, f"{r['n_frames']} x {r['n_atoms']} atoms", "AiiDA: reactmlip.label, all at once, 1 process each",
                     fmt_s(r["aiida"]["wall_seconds"], 1), f"{r['aiida']['labels_per_hour']:.0f}", "-"])
        for label, p in r["plain"].items():
            rows.append([name, "", f"plain loop: {label}", fmt_s(p["wall_seconds"], 1), f"{p['labels_per_hour']:.0f}",
                         f"{p['wall_seconds'] / r['aiida']['wall_seconds']:.2f}"])
    return rows


HEADER = ["set", "frames", "path", "wall (s)", "labels / hour", "AiiDA speed relative to it"]


def render(result: dict[str, Any], console) -> None:
    from ._docs_run import print_table

    print_table("DFT label throughput (pw.x, fast protocol)", HEADER, render_rows(result), console)
    for name, r in result["results"].items():
        console.print(f"{name}: AiiDA / best plain loop ({r['best_plain']}) = {r['ratio_vs_best_plain']:.2f} "
                      f"(goal >= {GOAL}); energies equal in every plain run: "
                      f"{all(p['energies_equal_aiida'] for p in r['plain'].values())}.{_engine_sentence(r)}")


# ------------------------------------------------------------------------------------------ docs/benchmark.md

def render_markdown(record: dict[str, Any]) -> str:
    """The ``label-throughput`` block of docs/benchmark.md from its JSON."""
    from aiida_reactmlip.report.docs_blocks import markdown_table

    lines = [markdown_table(HEADER, render_rows(record)), ""]
    for name, r in record["results"].items():
        verdict = "met" if r["ratio_vs_best_plain"] >= GOAL else f"missed by {GOAL - r['ratio_vs_best_plain']:.2f}"
        lines.append(f"- {name}: AiiDA / best plain loop ({r['best_plain']}) = **{r['ratio_vs_best_plain']:.2f}** "
                     f"(goal >= {GOAL}: {verdict}); AiiDA / plain loop at the same parallelism = "
                     f"{r['ratio_vs_same_parallelism']:.2f}." + _engine_sentence(r))
    prov = record["provenance"]
    lines += ["", (f"Written by `{prov['command']}` ({prov['generated']}, commit {(prov['git_commit'] or '?')[:7]}, "
                   f"{prov['machine']['logical_cores']} cores, load {' / '.join(map(str, prov['load_average']))} at "
                   "the end); docs/results/label-throughput.json holds every number and the LabelWorkChain UUIDs.")]
    return "\n".join(lines)


def _engine_sentence(r: dict[str, Any]) -> str:
    """Where the AiiDA path's extra time goes: the engine's own CPU beside the pw.x runs (records made before it
    was measured have none)."""
    cpu = r["aiida"].get("engine_cpu_seconds")
    if cpu is None:
        return ""
    return (f" The AiiDA engine itself used {cpu:.1f} s of CPU ({r['aiida']['engine_cpu_seconds_per_job']:.2f} s per "
            f"job: workflow steps, upload, submission, polling, retrieval, the pw.x parser, database writes) on the "
            f"cores the pw.x runs share, against {r['plain']['all at once, 1 process each']['wall_seconds']:.1f} s of "
            "wall for the whole plain loop.")


def _docs_paths():
    from aiida_reactmlip.report.docs_blocks import REPO_ROOT

    return REPO_ROOT / "docs" / "results" / "label-throughput.json", REPO_ROOT / "docs" / "benchmark.md"


BLOCK = "label-throughput"


def main() -> None:
    import sys

    from ._docs_run import benchmark_docs_main

    result_json, page = _docs_paths()
    benchmark_docs_main(__doc__, sys.modules[__name__], result_json, page,
                        {"frames": (int, DEFAULT_FRAMES, "Cu slab frames (default 4)")})


if __name__ == "__main__":
    main()
