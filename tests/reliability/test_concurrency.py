"""Many jobs on four daemon workers (PostgreSQL + RabbitMQ): every job finished ok, none lost, none run twice;
throughput and the engine's overhead per job measured. The scenario runs in its own process
(``concurrency_scenario.py``); the full size (200 evaluate + 20 label jobs) is ``python -m benchmarks
daemon_concurrency``, whose JSON the last test checks against docs/reliability.md."""

from __future__ import annotations

import pathlib

import pytest

from . import daemon_reports
from .psql_profile import run_scenario, services_missing

SCENARIO = pathlib.Path(__file__).with_name("concurrency_scenario.py")


def check_concurrency(result: dict) -> None:
    """The assertions shared by the small run and the committed full-size JSON."""
    assert (result["storage"], result["broker"]) == ("core.psql_dos", "core.rabbitmq")
    assert result["database_dropped"] is True and result["all_terminated"] is True
    summary, n_eval, n_label = result["summary"], result["evaluate_jobs"], result["label_jobs"]
    assert summary["jobs"] == n_eval + n_label
    assert (summary["evaluate_finished_ok"], summary["label_finished_ok"]) == (n_eval, n_label)
    assert summary["processes_not_finished_ok"] == []
    # no node lost or duplicated: one CalcJob per evaluation and per labelled frame, each executable
    # started once
    assert (summary["evaluate_calcjobs"], summary["pw_calcjobs"]) == (n_eval, n_label)
    assert summary["executable_starts"] == n_eval + n_label
    assert (summary["repeated"], summary["never_started"]) == (0, 0)
    assert summary["predictions_with_2_frames"] == n_eval
    assert (summary["labels_lost"], summary["labels_duplicated"]) == (0, 0)
    assert (summary["shared_workdirs"], summary["unknown_workdirs"], summary["duplicate_job_ids"]) == (0, 0,
                                                                                                       0)
    # the engine's overhead is what the node's wall adds to the runner's own wall: positive, and each
    # runner's wall
    # covers at least its own model load + evaluation
    seconds = result["evaluate_seconds"]
    assert seconds["engine_overhead"]["n"] == n_eval
    assert seconds["engine_overhead"]["min"] > 0
    assert seconds["runner_wall"]["min"] >= seconds["runner_model_load_plus_evaluation"]["min"]
    assert 0 < summary["throughput_jobs_per_min"] == pytest.approx(60 * summary["jobs"] / result["wall_seconds"],
                                                                   rel=0.01)


@pytest.mark.daemon
@pytest.mark.pwx
@pytest.mark.mlip
def test_concurrency_small(tmp_path):
    missing = services_missing()
    assert missing is None, missing
    result = run_scenario(SCENARIO, [str(tmp_path / "repository"), "--evaluate", "20", "--labels", "4"],
                          tmp_path,
                          timeout=900)
    check_concurrency(result)
    assert result["workers"] == 4


def test_concurrency_block_of_reliability_page_is_its_json():
    from aiida_reactmlip.report.docs_blocks import read_block

    record = daemon_reports._load(daemon_reports.CONCURRENCY_JSON)
    assert record["command"] == daemon_reports.CONCURRENCY_COMMAND
    assert record["result"]["evaluate_jobs"] >= 200 and record["result"]["label_jobs"] >= 20
    page = daemon_reports.PAGE.read_text()
    assert read_block(page, daemon_reports.CONCURRENCY_BLOCK) == daemon_reports.render_concurrency(record)
    check_concurrency(record["result"])
