"""What the scripts that regenerate a docs/ measurement share: run a ``reactmlip`` command on a profile, find the
process it reports, and say where the numbers came from under the generated table."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import time


def run_reactmlip(args: list[str], profile: str | None) -> tuple[str, float]:
    """Run ``reactmlip [-p PROFILE] ARGS`` (the venv's console script), echoing its output; its stdout and wall
    seconds. Exits with the command's stderr when it fails."""
    command = [str(pathlib.Path(sys.executable).parent / "reactmlip")] + (["-p", profile] if profile else []) + args
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    print(result.stdout)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout, wall


def reported_pks(stdout: str, process: str) -> list[int]:
    """The pks of ``process`` (e.g. ``ActiveLearningWorkChain``) that a command printed as ``<process> pk N``."""
    return [int(pk) for pk in re.findall(rf"{process} pk (\d+)", stdout)]


def load_nodes(pks: list[int], profile: str | None) -> list:
    from aiida import load_profile, orm

    load_profile(profile, allow_switch=True)
    return [orm.load_node(pk) for pk in pks]


def provenance_sentence(record: dict, result_json: str, what: str) -> str:
    """"Written by `COMMAND` (when, commit, cores, load; N s wall for WHAT): RESULT_JSON holds ..."."""
    prov = record["provenance"]
    return (f"Written by `{prov['command']}` ({prov['generated']}, commit {(prov['git_commit'] or '?')[:7]}, "
            f"{prov['machine']['logical_cores']} cores, load {' / '.join(map(str, prov['load_average']))} at the end; "
            f"{record['wall_seconds']:.0f} s wall for {what}): {result_json} holds every number and the node UUIDs.")


def write_record(record: dict, result_json: pathlib.Path, table) -> None:
    """Write ``record`` as the JSON of a docs measurement, then regenerate its block with ``table()``."""
    import json

    result_json.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    table()
    print(f"wrote {result_json} and its block")


def script_main(doc: str, run, table) -> None:
    """The command line of a docs-measurement script: ``run [--profile P]`` (the job, the JSON, the block) or
    ``table`` (the block from the committed JSON)."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p_run = sub.add_parser("run", help="run the job and write the JSON and the docs block")
    p_run.add_argument("--profile", default=None, help="AiiDA profile (default: the default profile)")
    sub.add_parser("table", help="regenerate the docs block from the JSON")
    args = parser.parse_args()
    if args.what == "run":
        run(args.profile)
    else:
        table()
