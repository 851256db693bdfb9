"""Many jobs on four daemon workers (PostgreSQL + RabbitMQ): none lost, none run twice, throughput and
overhead.

Run in its own process with a private AIIDA_PATH (``psql_profile.run_scenario``); prints ``RESULT {json}``.

``--evaluate`` ``reactmlip.evaluate`` CalcJobs (CHGNet 0.3.0 on 2 EMT Cu frames each, one process, one thread)
and ``--labels`` ``reactmlip.label`` WorkChains (one H2 frame each, real serial pw.x) are submitted to a
daemon of
4 workers, at most ``--max-active`` of them in flight at once (the ``core.direct`` scheduler of localhost has
no
queue: every submitted job would start at once; the cap keeps the machine's memory safe, like a submission
controller would). Then: every CalcJob finished ok, one executable start per working directory (start marks of
``psql_profile.marked_code``), one CalcJob per submitted evaluation and one PwCalculation per labelled frame,
every prediction holding its 2 frames; throughput (jobs per minute of wall) and the engine's overhead per job
(the CalcJob node's wall from creation to its last change, minus the executable's own wall from its marks).

Usage: python concurrency_scenario.py REPOSITORY_DIR [--evaluate N] [--labels M] [--max-active K]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from psql_profile import print_result, read_marks, start_daemon, throwaway_profile  # noqa: E402

WORKERS = 4
#: runner.poll.interval: with a broker, parents hear of finished children at once; polling is the fallback.
#: daemon.worker_process_slots: 4 workers x 50 slots hold every process in flight, with room to spare.
PROFILE_OPTIONS = {"runner.poll.interval": 10, "daemon.worker_process_slots": 50}
#: localhost's minimum scheduler poll interval (s): each poll is a `ps` in a shell, on the cores the jobs use.
COMPUTER_POLL_INTERVAL_S = 2.0


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "mean": round(statistics.fmean(values), 2),
            "median": round(statistics.median(values), 2),
            "min": round(min(values), 2), "max": round(max(values), 2)}


def main(repository_dir: str, n_evaluate: int, n_labels: int, max_active: int) -> dict:
    result: dict = {"workers": WORKERS, "evaluate_jobs": n_evaluate, "label_jobs": n_labels,
                    "max_active": max_active,
                    "profile_options": PROFILE_OPTIONS, "computer_poll_interval_s": COMPUTER_POLL_INTERVAL_S}
    marks_file = pathlib.Path(repository_dir).resolve().parent / "marks.log"
    with throwaway_profile(repository_dir, options=PROFILE_OPTIONS, result=result) as profile:
        from aiida import orm
        from aiida.engine import submit

        import daemon_jobs as jobs
        from aiida_reactmlip import provision
        from aiida_reactmlip.calculations.evaluate import EvaluateCalculation
        from aiida_reactmlip.workflows.label import LabelWorkChain
        from psql_profile import marked_code

        computer = provision.ensure_localhost()
        computer.set_minimum_job_poll_interval(COMPUTER_POLL_INTERVAL_S)
        codes = provision.ensure_codes(computer)
        provision.ensure_debian_pseudo_family()
        model = provision.ensure_registry_models(["chgnet-0.3.0"])["chgnet-0.3.0"]
        pw_code = marked_code("pw-marked", codes["pw"], marks_file)
        runner_code = marked_code("runner-marked", codes["runner"], marks_file, "export OMP_NUM_THREADS=1")
        # inputs first, so that the clock measures the engine, not the making of datasets
        plan = []
        every = max(1, (n_evaluate + n_labels) // max(1, n_labels)) if n_labels else 0
        labels_left = n_labels
        for index in range(n_evaluate):
            plan.append(("evaluate", jobs.evaluate_inputs(runner_code, model, seed=index)))
            if labels_left and (index + 1) % every == 0:
                plan.append(("label", jobs.label_inputs({"h2": jobs.h2_structure(0.60 + 0.01 * labels_left)},
                                                        pw_code)))
                labels_left -= 1
        for _ in range(labels_left):
            plan.append(("label", jobs.label_inputs({"h2": jobs.h2_structure(0.60 + 0.01 * labels_left)},
                                                    pw_code)))
            labels_left -= 1
        start_daemon(profile, WORKERS)

        submitted: list[tuple[str, orm.ProcessNode]] = []
        active: list[orm.ProcessNode] = []
        t0 = time.time()
        deadline = t0 + 3600
        while (plan or active) and time.time() < deadline:
            if active:
                states = dict(orm.QueryBuilder().append(
                    orm.ProcessNode, filters={"id": {"in": [n.pk for n in active]}},
                    project=["id", "attributes.process_state"]).all())
                active = [n for n in active if states.get(n.pk) not in ("finished", "excepted", "killed")]
            while plan and len(active) < max_active:
                kind, inputs = plan.pop(0)
                node = submit(EvaluateCalculation if kind == "evaluate" else LabelWorkChain, **inputs)
                submitted.append((kind, node))
                active.append(node)
            time.sleep(0.5)
        wall = time.time() - t0
        result["all_terminated"] = not plan and not active
        result["wall_seconds"] = round(wall, 1)

        # ---- accounting
        accounting = jobs.job_accounting(marks_file)
        marks = read_marks(marks_file)
        begin = {m["workdir"]: m["time"] for m in marks if m["event"] == "start"}
        end = {m["workdir"]: m["time"] for m in marks if m["event"] == "end"}
        evaluations = [node for kind, node in submitted if kind == "evaluate"]
        labels = [node for kind, node in submitted if kind == "label"]
        predictions_frames = [orm.load_node(n.pk).outputs.predictions.get_array("energies").shape[0]
                              if "predictions" in orm.load_node(n.pk).outputs else 0 for n in evaluations]
        label_checks = [jobs.label_accounting(node, [node.inputs.structures["h2"].base.extras.get("name")])
                        for node in labels]
        overhead, runner_wall, node_wall, runner_compute = [], [], [], []
        for node in evaluations:
            node = orm.load_node(node.pk)
            workdir = node.get_remote_workdir()
            if not node.is_finished_ok or workdir not in begin or workdir not in end:
                continue
            wall_node = (node.mtime - node.ctime).total_seconds()
            wall_runner = end[workdir] - begin[workdir]
            node_wall.append(wall_node)
            runner_wall.append(wall_runner)
            overhead.append(wall_node - wall_runner)
            timing = node.outputs.timing.get_dict() if "timing" in node.outputs else {}
            runner_compute.append(float(timing.get("model_load_seconds",
                                                   0)) + float(timing.get("evaluation_seconds", 0)))
        processes = orm.QueryBuilder().append(orm.ProcessNode).all(flat=True)
        totals = accounting["totals"]
        n_jobs = len(submitted)
        result["summary"] = {
            "jobs": n_jobs,
            "evaluate_finished_ok": sum(1 for n in evaluations if orm.load_node(n.pk).is_finished_ok),
            "label_finished_ok": sum(1 for n in labels if orm.load_node(n.pk).is_finished_ok),
            "processes": len(processes),
            "processes_not_finished_ok": [f"{p.process_label}<{p.pk}> {getattr(p.process_state, 'value', 'none')} {p.exit_status}"
                                          for p in processes if not p.is_finished_ok],
            "evaluate_calcjobs": totals.get("EvaluateCalculation", {}).get("calcjobs", 0),
            "pw_calcjobs": totals.get("PwCalculation", {}).get("calcjobs", 0),
            "executable_starts": sum(t["executable_starts"] for t in totals.values()),
            "repeated": sum(t["repeated"] for t in totals.values()),
            "never_started": sum(t["never_started"] for t in totals.values()),
            "predictions_with_2_frames": sum(1 for n in predictions_frames if n == 2),
            "labels_lost": sum(a["lost"] for a in label_checks),
            "labels_duplicated": sum(a["duplicated"] for a in label_checks),
            "shared_workdirs": accounting["shared_workdirs"], "unknown_workdirs": len(accounting["unknown_workdirs"]),
            "duplicate_job_ids": accounting["duplicate_job_ids"],
            "throughput_jobs_per_min": round(n_jobs / wall * 60, 2) if wall else None,
            "wall_per_job_s": round(wall / n_jobs, 2) if n_jobs else None,
        }
        result["evaluate_seconds"] = {"calcjob_wall": _stats(node_wall), "runner_wall": _stats(runner_wall),
                                      "runner_model_load_plus_evaluation": _stats(runner_compute),
                                      "engine_overhead": _stats(overhead)}
        result["node_uuids"] = {"evaluate": [n.uuid for n in evaluations], "labels": [n.uuid for n in labels]}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository_dir")
    parser.add_argument("--evaluate", type=int, default=20)
    parser.add_argument("--labels", type=int, default=4)
    parser.add_argument("--max-active", type=int, default=8)
    args = parser.parse_args()
    print_result(main(args.repository_dir, args.evaluate, args.labels, args.max_active))
