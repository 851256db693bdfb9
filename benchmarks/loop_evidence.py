"""The measured loop of docs/active-learning.md ("Measured here"): docs/results/loop-ch4-evidence.json and its table.

    .venv/bin/python -m benchmarks.loop_evidence run      # runs workchains/loop-ch4-evidence.yaml (~8-10 min), then `table`
    .venv/bin/python -m benchmarks.loop_evidence table    # regenerates the block of docs/active-learning.md

``run`` calls ``reactmlip loop run workchains/loop-ch4-evidence.yaml`` on the default profile (caching off, so every
fine-tune and evaluation runs here), reads the finished ActiveLearningWorkChains back from the graph and writes
their curves (validation force MAE and the C-H bond-scan stretch-energy error per round), labels to the target,
the paired comparison with random and the node UUIDs, with the command, commit, machine and load. ``table``
rewrites the text between ``<!-- loop-ch4-evidence:start -->`` and ``<!-- loop-ch4-evidence:end -->``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys
import time

from aiida_reactmlip.report.docs_blocks import REPO_ROOT, markdown_table, provenance, write_block

LOOP_FILE = REPO_ROOT / "workchains" / "loop-ch4-evidence.yaml"
RESULT_JSON = REPO_ROOT / "docs" / "results" / "loop-ch4-evidence.json"
DOCS = REPO_ROOT / "docs" / "active-learning.md"
BLOCK = "loop-ch4-evidence"
COMMAND = "python -m benchmarks.loop_evidence run"


def record_from_nodes(nodes: list, target: float) -> dict:
    """The numbers of finished loops (ActiveLearningWorkChain nodes): one entry per loop, the comparison of
    the file's strategy with random (:func:`aiida_reactmlip.metrics.loop.compare_to_random`)."""
    from aiida_reactmlip.metrics.loop import compare_to_random, labels_to_target

    loops = []
    for node in nodes:
        summary = node.outputs.summary.get_dict()
        loops.append({
            "strategy": summary["strategy"], "seed": summary["seed"], "pk": node.pk, "uuid": node.uuid,
            "n_labels": summary["n_labels"], "force_mae": summary["force_mae"],
            "scan_energy_mae": summary.get("scan_energy_mae"),
            "labels_to_target": labels_to_target(summary["n_labels"], summary["force_mae"], target),
            "seconds": sum(row.get("seconds", 0.0) for row in summary["rounds"]),
        })
    strategies = sorted({loop["strategy"] for loop in loops} - {"random"})
    comparison = None
    if strategies and any(loop["strategy"] == "random" for loop in loops):
        curves = {name: [(loop["n_labels"], loop["force_mae"]) for loop in loops if loop["strategy"] == name]
                  for name in (strategies[0], "random")}
        comparison = compare_to_random(curves[strategies[0]], curves["random"], target)
    return {"target_force_mae": target, "loops": loops, "comparison": comparison}


def render(record: dict) -> str:
    """The block of docs/active-learning.md: per loop its curve and labels to the target, then the verdict."""
    loops = record["loops"]
    labels = loops[0]["n_labels"]
    rows = []
    for loop in loops:
        scan = loop.get("scan_energy_mae")
        rows.append([loop["strategy"], loop["seed"], loop["pk"], " / ".join(f"{e:.3f}" for e in loop["force_mae"]),
                     "-" if scan is None else " / ".join(f"{1000 * e:.0f}" for e in scan),
                     loop["labels_to_target"] if loop["labels_to_target"] is not None else "not reached"])
    header = ["strategy", "seed", "pk", f"validation force MAE (eV/Å) at {' / '.join(map(str, labels))} labels",
              "C-H scan stretch-energy error (meV)", f"labels to {record['target_force_mae']:g} eV/Å"]
    lines = [markdown_table(header, rows), ""]
    comparison = record.get("comparison")
    if comparison:
        lines.append(f"Verdict on the mean curves (`metrics.loop.compare_to_random`): {comparison['verdict']}; mean "
                     f"force MAE over the budget {comparison['loop_auc']:.4f} eV/Å for the loop, "
                     f"{comparison['random_auc']:.4f} for random.")
    prov = record["provenance"]
    lines.append("")
    lines.append(f"Written by `{prov['command']}` ({prov['generated']}, commit {(prov['git_commit'] or '?')[:7]}, "
                 f"{prov['machine']['logical_cores']} cores, load {' / '.join(map(str, prov['load_average']))} at the "
                 f"end; {record['wall_seconds']:.0f} s wall for the {len(loops)} loops): "
                 f"docs/results/loop-ch4-evidence.json holds every number and the node UUIDs.")
    return "\n".join(lines)


def table() -> None:
    write_block(DOCS, BLOCK, render(json.loads(RESULT_JSON.read_text())))


def run(profile: str | None) -> None:
    import yaml

    target = float(yaml.safe_load(LOOP_FILE.read_text())["target_force_mae"])
    command = [str(pathlib.Path(sys.executable).parent / "reactmlip")] + (["-p", profile] if profile else []) + [
        "loop", "run", str(LOOP_FILE), "--no-cache", "--output", str(REPO_ROOT / "results" / "loop-ch4-evidence")]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    print(result.stdout)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    from aiida import load_profile, orm

    load_profile(profile, allow_switch=True)
    pks = [int(pk) for pk in re.findall(r"ActiveLearningWorkChain pk (\d+)", result.stdout)]
    record = {"provenance": provenance(COMMAND), "loop_file": str(LOOP_FILE.relative_to(REPO_ROOT)),
              "wall_seconds": round(wall, 1), **record_from_nodes([orm.load_node(pk) for pk in pks], target)}
    RESULT_JSON.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    table()
    print(f"wrote {RESULT_JSON} and the {BLOCK} block of {DOCS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p_run = sub.add_parser("run", help="run the loop file and write the JSON and the table")
    p_run.add_argument("--profile", default=None, help="AiiDA profile (default: the default profile)")
    sub.add_parser("table", help="regenerate the docs block from the JSON")
    args = parser.parse_args()
    if args.what == "run":
        run(args.profile)
    else:
        table()


if __name__ == "__main__":
    main()
