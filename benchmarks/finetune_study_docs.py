"""The measured study of docs/finetuning.md: docs/results/finetune-ch4-study.json and its learning-curve table.

    .venv/bin/python -m benchmarks.finetune_study_docs run     # the study (~6-20 min on 2 cores), then `table`
    .venv/bin/python -m benchmarks.finetune_study_docs table   # regenerates the block of docs/finetuning.md

``run`` calls ``reactmlip finetune study workchains/finetune-ch4-dissociation.yaml`` on the default profile, reads
the finished FinetuneStudyWorkChain back from the graph (its ``learning_curve`` output, the UUIDs of its models
and metrics) and writes them with the command, commit, machine and load. ``table`` rewrites the text between
``<!-- finetune-ch4-study:start -->`` and ``<!-- finetune-ch4-study:end -->`` with the table ``reactmlip finetune
show`` prints (``report.finetune_report.format_table``) and the gains and forgetting read from the same rows.
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

STUDY_FILE = REPO_ROOT / "workchains" / "finetune-ch4-dissociation.yaml"
RESULT_JSON = REPO_ROOT / "docs" / "results" / "finetune-ch4-study.json"
DOCS = REPO_ROOT / "docs" / "finetuning.md"
BLOCK = "finetune-ch4-study"
COMMAND = "python -m benchmarks.finetune_study_docs run"


def record_from_node(node) -> dict:
    """The learning curve of a finished study and the UUIDs of what it made."""
    curve = node.outputs.learning_curve.get_dict()
    models = {key: {budget: model.uuid for budget, model in group.items()}
              for key, group in node.outputs.models.items()}
    return {"study_pk": node.pk, "study_uuid": node.uuid, "learning_curve": curve, "model_uuids": models,
            "n_finetunes": sum(len(group) for group in models.values())}


def _forgetting_range(rows: list[dict]) -> tuple[float, float] | None:
    changes = [row["forgetting_force_mae_relative_change"] for row in rows
               if row.get("forgetting_force_mae_relative_change") is not None and row.get("budget")]
    return (min(changes), max(changes)) if changes else None


def render(record: dict) -> str:
    """The block of docs/finetuning.md: the learning-curve table, the force gains at the largest budget per model,
    the range of the general-set force change (forgetting), and where the numbers come from."""
    from aiida_reactmlip.report.finetune_report import format_table

    rows = record["learning_curve"]["rows"]
    head, cells = format_table(rows)
    lines = [markdown_table(head, cells), ""]
    largest = max(row["budget"] for row in rows)
    gains = [f"{row.get('model_name') or row['model']} {100 * row['force_mae_gain']:.0f} %"
             for row in rows if row["budget"] == largest and row.get("force_mae_gain") is not None]
    if gains:
        lines.append(f"Held-out force error reduction at {largest} DFT labels against zero-shot: {', '.join(gains)}.")
    forgetting = _forgetting_range(rows)
    if forgetting:
        lines.append(f"General-set force MAE change after fine-tuning (forgetting), every model and budget: "
                     f"{100 * forgetting[0]:+.0f} % to {100 * forgetting[1]:+.0f} %.")
    lines += ["", provenance_sentence(record, "docs/results/finetune-ch4-study.json",
                                      f"the whole study, {record['n_finetunes']} fine-tunes")]
    return "\n".join(lines)


def table() -> None:
    write_block(DOCS, BLOCK, render(json.loads(RESULT_JSON.read_text())))


def run(profile: str | None) -> None:
    stdout, wall = run_reactmlip(["finetune", "study", str(STUDY_FILE), "--output",
                                  str(REPO_ROOT / "results" / "finetune-ch4-dissociation")], profile)
    (node,) = load_nodes(reported_pks(stdout, "FinetuneStudyWorkChain")[-1:], profile)
    record = {"provenance": provenance(COMMAND), "study_file": str(STUDY_FILE.relative_to(REPO_ROOT)),
              "wall_seconds": round(wall, 1), **record_from_node(node)}
    write_record(record, RESULT_JSON, table)


def main() -> None:
    script_main(__doc__, run, table, RESULT_JSON)


if __name__ == "__main__":
    main()
