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

import json

from aiida_reactmlip.report.docs_blocks import REPO_ROOT, markdown_table, provenance, write_block
from benchmarks._docs_run import (
    load_nodes,
    provenance_sentence,
    reported_pks,
    run_reactmlip,
    script_main,
    write_record,
)

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
    scans = [loop["scan_energy_mae"] for loop in loops if loop.get("scan_energy_mae")]
    if len(scans) == len(loops):
        def spread(index: int) -> str:
            low, high = (f"{f(1000 * scan[index] for scan in scans):.0f}" for f in (min, max))
            return f"{low} meV" if low == high else f"{low}-{high} meV"

        lines.append(f"C-H stretch-energy error over the {len(loops)} loops: {spread(0)} zero-shot, {spread(1)} after "
                     f"{labels[1]} labels, {spread(-1)} at {labels[-1]}.")
    lines += ["", provenance_sentence(record, "docs/results/loop-ch4-evidence.json", f"the {len(loops)} loops")]
    return "\n".join(lines)


def table() -> None:
    write_block(DOCS, BLOCK, render(json.loads(RESULT_JSON.read_text())))


def run(profile: str | None) -> None:
    import yaml

    target = float(yaml.safe_load(LOOP_FILE.read_text())["target_force_mae"])
    stdout, wall = run_reactmlip(["loop", "run", str(LOOP_FILE), "--no-cache", "--output",
                                  str(REPO_ROOT / "results" / "loop-ch4-evidence")], profile)
    nodes = load_nodes(reported_pks(stdout, "ActiveLearningWorkChain"), profile)
    record = {"provenance": provenance(COMMAND), "loop_file": str(LOOP_FILE.relative_to(REPO_ROOT)),
              "wall_seconds": round(wall, 1), **record_from_nodes(nodes, target)}
    write_record(record, RESULT_JSON, table)


def main() -> None:
    script_main(__doc__, run, table, RESULT_JSON)


if __name__ == "__main__":
    main()
