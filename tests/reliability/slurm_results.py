"""The block ``reliability-slurm`` of docs/reliability.md, rendered from docs/results/reliability-slurm.json.

Written by the slow test ``tests/reliability/test_slurm.py`` when ``REACTMLIP_WRITE_SLURM_RESULTS=1`` (see
:data:`COMMAND`); pure (no AiiDA), so the fast test can regenerate the block.
"""

from __future__ import annotations

import json
import pathlib

from aiida_reactmlip.report.docs_blocks import REPO_ROOT, markdown_table, write_block

RESULTS_JSON = REPO_ROOT / "docs" / "results" / "reliability-slurm.json"
PAGE = REPO_ROOT / "docs" / "reliability.md"
BLOCK = "reliability-slurm"
COMMAND = (
    "REACTMLIP_WRITE_SLURM_RESULTS=1 .venv/bin/python -m pytest -q -p no:cacheprovider -m slow "
    "tests/reliability/test_slurm.py"
)


def render(data: dict) -> str:
    """The Markdown of the block: the cluster, every job that went through Slurm, localhost vs Slurm numbers,
    what happened to the jobs cancelled with scancel."""
    cluster = data["cluster"]
    lines = [
        (
            f"Measured with `{data['provenance']['command']}` on {data['provenance']['generated']} "
            f"(commit {str(data['provenance']['git_commit'])[:10]}, "
            f"{data['provenance']['machine']['logical_cores']} "
            f"cores): a one-node Slurm {cluster['slurm_version']} cluster on this machine "
            f"(partition `{cluster['partition']}`, {cluster['cpus']} CPUs), reached by AiiDA over SSH "
            f"(`{cluster['transport']}` + `{cluster['scheduler']}`, computer `{cluster['computer']}`). "
            "The same WorkChains ran on `localhost` and on the cluster; only the codes differed. "
            f"Load averages (1, 5, 15 min) at the end: {data['provenance']['load_average']}."
        ),
        "",
        markdown_table(
            [
                "step",
                "process",
                "Slurm job id",
                "Slurm state (scontrol)",
                "queued (s)",
                "ran (s)",
                "AiiDA wall (s)",
                "exit status",
            ],
            [
                [
                    job["step"],
                    job["process"],
                    job["job_id"],
                    job["slurm_state"],
                    job["slurm_wait_s"],
                    job["slurm_run_time_s"],
                    job["aiida_wall_s"],
                    job["exit_status"],
                ]
                for job in data["jobs"]
            ],
        ),
        "",
        markdown_table(
            ["quantity", "frames", "localhost", "Slurm", "largest difference"],
            [
                [row["quantity"], row["frames"], row["localhost"], row["slurm"], row["max_abs_difference"]]
                for row in data["comparisons"]
            ],
        ),
        "",
        "Jobs cancelled with `scancel` while running:",
        "",
        markdown_table(
            [
                "WorkChain",
                "cancelled job id",
                "cancelled after (s running)",
                "that job's exit status",
                "retried as job id",
                "retry exit status",
                "WorkChain exit status",
                "result vs uncancelled run",
            ],
            [
                [
                    row["workchain"],
                    row["cancelled_job_id"],
                    row["cancelled_after_running_s"],
                    f"{row['cancelled_exit_status']} ({row['cancelled_exit_message']})",
                    row["retry_job_id"],
                    row["retry_exit_status"],
                    row["workchain_exit_status"],
                    row["result_vs_reference"],
                ]
                for row in data["scancel"]
            ],
        ),
    ]
    return "\n".join(lines)


def load() -> dict:
    return json.loads(RESULTS_JSON.read_text())


def write(data: dict, results_json: pathlib.Path = RESULTS_JSON, page: pathlib.Path = PAGE) -> None:
    """Write the JSON and fill the block of the page from it."""
    results_json.write_text(json.dumps(data, indent=1) + "\n")
    write_block(page, BLOCK, render(data))
