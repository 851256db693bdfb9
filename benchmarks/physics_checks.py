"""Physics-aware checks of every offline model and a fine-tuned CHGNet: docs/results/physics.json and its table.

    .venv/bin/python benchmarks/physics_checks.py run --finetuned PK      # runs the studies (minutes), then `table`
    .venv/bin/python benchmarks/physics_checks.py assemble DIR [DIR ...]   # physics.json from `reactmlip physics` folders
    .venv/bin/python benchmarks/physics_checks.py assemble --merge DIR    # replace one study, keep the others
    .venv/bin/python benchmarks/physics_checks.py table                    # regenerate the tables of docs/physics.md

``run`` calls ``reactmlip physics`` for the studies of docs/physics.md (C,H: every offline model, the fine-tuned
one with CHGNet 0.3.0 and SevenNet-0; H,Cu: CHGNet 0.3.0, SevenNet-0 and the fine-tuned one) on the default
profile, one torch thread each. ``assemble`` merges their ``physics.json`` files with the git commit, the machine, the load
averages and the wall times into ``docs/results/physics.json``. ``table`` rewrites the text between
``<!-- physics-table:STUDY:start -->`` and ``<!-- physics-table:STUDY:end -->`` in docs/physics.md from it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "physics.json"
DOCS = ROOT / "docs" / "physics.md"
#: study (output folder) -> elements, models, whether the fine-tuned model is checked too
STUDIES = {
    "C-H": {"elements": "C,H", "models": ["chgnet-0.3.0", "sevennet-0"], "finetuned": True},
    "C-H-more": {"elements": "C,H", "models": ["chgnet-0.2.0", "chgnet-r2scan", "sevennet-0-22may2024", "sevennet-l3i5"],
                 "finetuned": False},
    "H-Cu": {"elements": "H,Cu", "models": ["chgnet-0.3.0", "sevennet-0"], "finetuned": True},
}


def machine() -> dict:
    """CPU model, logical cores, memory (GiB), Python and platform."""
    cpu = ""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "memory_GiB": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_dirty() -> bool | None:
    """Whether the checkout has uncommitted changes (the numbers then come from the commit plus those)."""
    try:
        return bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                   capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return None


def assemble(folders: list[pathlib.Path], extra: dict | None = None, merge: bool = False) -> dict:
    """docs/results/physics.json from the output folders of `reactmlip physics` (folder name = study).

    With ``merge`` the studies already in the JSON are kept and only the given ones are replaced; each study
    then carries its own ``provenance`` (when, which commit, the load, ``extra``), since the studies were run at
    different times.
    """
    previous = json.loads(RESULTS.read_text()) if merge and RESULTS.exists() else None
    record = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "machine": machine(),
        "load_average_now": list(os.getloadavg()),
        "regenerate": "benchmarks/physics_checks.py run --finetuned PK (or assemble DIR...); table: "
        "benchmarks/physics_checks.py table",
        "studies": {},
        **(extra or {}),
    }
    for folder in folders:
        study = json.loads((folder / "physics.json").read_text())
        for entry in study["models"].values():
            metrics = entry.get("metrics")
            if metrics:
                entry["wall_seconds"] = metrics.get("wall_seconds")
                entry["model_load_seconds"] = metrics.get("model_load_seconds")
                entry["n_evaluations"] = metrics.get("n_evaluations")
        if merge:
            study["provenance"] = {"generated": record["generated"], "git_commit": record["git_commit"],
                                   "git_dirty": record["git_dirty"], "load_average_now": record["load_average_now"],
                                   **(extra or {})}
        record["studies"][folder.name] = study
    if previous is not None:  # the top level keeps describing the first run; the new studies carry their own
        previous["studies"].update(record["studies"])
        previous["updated"] = record["generated"]
        record = previous
    if all(name in record["studies"] for name in STUDIES):
        record.pop("not_run", None)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def table() -> None:
    """Rewrite each study's table in docs/physics.md from docs/results/physics.json."""
    sys.path.insert(0, str(ROOT))
    from aiida_reactmlip.report.docs_blocks import replace_block
    from aiida_reactmlip.report.physics import docs_table

    record = json.loads(RESULTS.read_text())
    text = DOCS.read_text()
    for name, study in record["studies"].items():
        try:
            text = replace_block(text, f"physics-table:{name}", docs_table(study))
        except KeyError:
            print(f"docs/physics.md has no markers for study {name}; skipped", file=sys.stderr)
    DOCS.write_text(text)
    print(f"wrote the tables of {DOCS.relative_to(ROOT)} from {RESULTS.relative_to(ROOT)}")


def run(finetuned: str | None, output: pathlib.Path) -> None:
    """Run both studies with `reactmlip physics`, then assemble and regenerate the tables."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    load = {"load_average_start": list(os.getloadavg())}
    folders, seconds = [], {}
    for name, study in STUDIES.items():
        folder = output / name
        models = study["models"] + ([finetuned] if finetuned and study["finetuned"] else [])
        start = time.perf_counter()
        command = [
            str(pathlib.Path(sys.executable).with_name("reactmlip")),
            "physics",
            *models,
            "--elements",
            study["elements"],
            "--output",
            str(folder),
        ]
        subprocess.run(command, check=True, env=env, cwd=ROOT)
        seconds[name] = time.perf_counter() - start
        folders.append(folder)
    load["load_average_end"] = list(os.getloadavg())
    assemble(folders, {**load, "study_wall_seconds": seconds})
    table()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run the studies, assemble, regenerate the tables")
    p_run.add_argument("--finetuned", help="pk/UUID of a fine-tuned MlipModelData to check too")
    p_run.add_argument("--output", type=pathlib.Path, default=ROOT / "results" / "physics")
    p_asm = sub.add_parser("assemble", help="physics.json from `reactmlip physics` output folders")
    p_asm.add_argument("folders", nargs="+", type=pathlib.Path)
    p_asm.add_argument(
        "--extra", type=pathlib.Path, help="a JSON object merged into the record (load averages...)"
    )
    p_asm.add_argument("--merge", action="store_true",
                       help="keep the other studies of docs/results/physics.json; replace only these")
    sub.add_parser("table", help="regenerate the tables of docs/physics.md")
    args = parser.parse_args()
    if args.command == "run":
        run(args.finetuned, args.output)
    elif args.command == "assemble":
        assemble(args.folders, json.loads(args.extra.read_text()) if args.extra else None, merge=args.merge)
    else:
        table()


if __name__ == "__main__":
    main()
