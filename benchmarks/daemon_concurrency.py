"""Concurrency on the production path: >= 200 evaluate + 20 label jobs on 4 daemon workers (PostgreSQL +
RabbitMQ).

Runs ``tests/reliability/concurrency_scenario.py`` in its own process with a private ``AIIDA_PATH`` and a
throw-away
``core.psql_dos`` + ``core.rabbitmq`` profile (removed, database dropped, daemon stopped at the end):
``frames``
``reactmlip.evaluate`` CalcJobs (CHGNet 0.3.0 on 2 tiny Cu frames each) and 20 ``reactmlip.label`` WorkChains
(one H2 frame, real serial pw.x), at most 8 in flight. Checks that none was lost or ran twice and measures
throughput (jobs/min) and the engine's overhead per job (CalcJob wall minus the runner's own wall). At the
full
size (>= 200 evaluate jobs) it writes ``docs/results/reliability-concurrency.json`` and the block
``reliability-concurrency`` of docs/reliability.md. About 15-25 minutes on 2 cores.

``python -m benchmarks daemon_concurrency [--frames 200]``; needs PostgreSQL (127.0.0.1:5432, trust, user
postgres) and RabbitMQ (127.0.0.1:5672, guest/guest).
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

NAME = "daemon_concurrency"
DESCRIPTION = "many evaluate + label jobs on 4 daemon workers (PostgreSQL + RabbitMQ): lost/repeated jobs, jobs/min"
DEFAULT_FRAMES = 200
LABEL_JOBS = 20
MAX_ACTIVE = 8
FULL_SIZE = 200
RELIABILITY = pathlib.Path(__file__).resolve().parents[1] / "tests" / "reliability"


def _modules():
    if str(RELIABILITY) not in sys.path:
        sys.path.insert(0, str(RELIABILITY))
    import daemon_reports
    import psql_profile

    return daemon_reports, psql_profile


def run(frames: int | None = None, console=None,
        **options) -> dict:  # noqa: ARG001 - shared benchmark signature
    """Run the scenario with ``frames`` evaluate jobs (default 200) and 20 label jobs; the scenario's
    result."""
    daemon_reports, psql_profile = _modules()
    missing = psql_profile.services_missing()
    if missing:
        raise RuntimeError(missing)
    n_evaluate = frames or DEFAULT_FRAMES
    with tempfile.TemporaryDirectory(prefix="rel_concurrency_") as tmp:
        result = psql_profile.run_scenario(
            RELIABILITY / "concurrency_scenario.py",
            [str(pathlib.Path(tmp) / "repository"), "--evaluate", str(n_evaluate), "--labels",
             str(LABEL_JOBS),
             "--max-active", str(MAX_ACTIVE)],
            pathlib.Path(tmp), timeout=4 * 3600)
    summary = result["summary"]
    result["ok"] = (summary["repeated"] == 0 and summary["labels_lost"] == 0 and summary["labels_duplicated"] == 0
                    and not summary["processes_not_finished_ok"])
    if n_evaluate >= FULL_SIZE:
        daemon_reports.save(result, daemon_reports.CONCURRENCY_JSON, daemon_reports.CONCURRENCY_COMMAND,
                            daemon_reports.CONCURRENCY_BLOCK)
        result["docs_written"] = str(daemon_reports.CONCURRENCY_JSON)
    return result


def render(result: dict, console) -> None:
    """Print the scenario's counts and timings."""
    summary, seconds = result["summary"], result["evaluate_seconds"]
    console.print(f"jobs {summary['jobs']}: evaluate ok {summary['evaluate_finished_ok']}, label ok "
                  f"{summary['label_finished_ok']}; repeated {summary['repeated']}, labels lost {summary['labels_lost']}, "
                  f"not finished ok {len(summary['processes_not_finished_ok'])}")
    console.print(f"wall {result['wall_seconds']} s, throughput {summary['throughput_jobs_per_min']} jobs/min; per "
                  f"evaluate job: node wall {seconds['calcjob_wall'].get('mean')} s, runner wall "
                  f"{seconds['runner_wall'].get('mean')} s, engine overhead {seconds['engine_overhead'].get('mean')} s")
    if result.get("docs_written"):
        console.print(f"written: {result['docs_written']} and the block of docs/reliability.md")
