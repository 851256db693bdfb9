"""Daemon faults on PostgreSQL + RabbitMQ: workers SIGKILLed mid-run, then pause/play, kill and a cached
rerun.

Run in its own process with a private AIIDA_PATH (``psql_profile.run_scenario``); prints ``RESULT {json}``.

Phase 1: ``--labels`` ``reactmlip.label`` WorkChains (``--frames`` H2 frames each, real serial pw.x) and
``--finetunes`` ``reactmlip.finetune_base`` WorkChains (CHGNet 0.3.0, 4 frames, 1 epoch, one thread) go to a
daemon of 2 workers. At each fault point of the schedule (``pw.x running``, ``fine-tune running``, ``job
ended,
not parsed``, ``between WorkChain steps``) the scenario waits for a job in that state, records it, and
SIGKILLs one
worker or all of them (``verdi daemon restart`` for ``restart``); circus starts new workers. Phase 2: ``verdi
process pause`` a pw.x CalcJob while pw.x runs, check it stays put after pw.x ended, ``play`` it; ``verdi
process
kill`` a 3-frame label WorkChain mid-run; resubmit the same inputs with caching enabled for pw.x.

Every count comes from the database and from start marks the job scripts write (``psql_profile.marked_code``).

Usage: python daemon_faults_scenario.py REPOSITORY_DIR [--size small|full]
"""

from __future__ import annotations

import argparse
import pathlib
import random
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from psql_profile import (  # noqa: E402
    kill_workers,
    marks_by_workdir,
    print_result,
    read_marks,
    start_daemon,
    throwaway_profile,
    verdi,
    wait_for_workers,
    worker_pids,
)

#: Fault schedule per size: (point, how): how = one (a random worker) | all (every worker) | restart (verdi).
SIZES = {
    "small": {"labels": 3, "frames": 2, "finetunes": 1,
              "faults": [("pw.x running", "all"), ("fine-tune running", "all")]},
    "full": {"labels": 5, "frames": 2, "finetunes": 2,
             "faults": [("pw.x running", "all"), ("fine-tune running", "all"), ("job ended, not parsed", "all"),
                        ("pw.x running", "one"), ("between WorkChain steps", "all"),
                        ("job ended, not parsed", "one"), ("pw.x running", "restart")]},
}
WORKERS = 2
#: daemon.timeout: circus answers slowly on a loaded machine; its default of 2 s makes `verdi daemon restart` fail.
PROFILE_OPTIONS = {"runner.poll.interval": 2, "caching.enabled_for": ["aiida.calculations:quantumespresso.pw"],
                   "daemon.timeout": 30}
POINT_TIMEOUT_S = 120
#: Seconds a played CalcJob whose job had ended gets to finish before the daemon is restarted.
PLAY_WAIT_S = 30
#: Seconds between a fault and the search for the next one.
SETTLE_S = 5


def restart_daemon(profile: str) -> dict:
    """``verdi daemon stop``, ``verdi process repair``, ``verdi daemon start WORKERS``: exit statuses and what repair
    said. (``verdi daemon restart`` starts ``daemon.default_workers`` workers, not the number running before; and a
    graceful stop under load can leave a process without its RabbitMQ task, which only ``repair`` gives back.)"""
    stop = verdi(profile, "daemon", "stop", check=False, timeout=300)
    repair = verdi(profile, "process", "repair", check=False, timeout=300)
    start = verdi(profile, "daemon", "start", str(WORKERS), check=False, timeout=300)
    return {"stop_rc": stop.returncode, "repair_rc": repair.returncode, "start_rc": start.returncode,
            "repair_said": (repair.stdout + repair.stderr).strip()[-300:]}


def find_target(point: str, marks_file, workchains, used: set) -> dict | None:
    """A process in state ``point`` not targeted before, or None."""
    import daemon_jobs as jobs

    if point == "pw.x running":
        candidates = jobs.running_jobs(marks_file, "PwCalculation")
    elif point == "fine-tune running":
        candidates = jobs.running_jobs(marks_file, "FinetuneCalculation")
    elif point == "job ended, not parsed":
        candidates = jobs.ended_not_parsed(marks_file)
    else:
        candidates = jobs.between_steps(workchains)
    fresh = [row for row in candidates if row["pk"] not in used]
    return fresh[0] if fresh else None


def inject(profile: str, point: str, how: str, marks_file, workchains, used: set, t0: float) -> dict:
    """Wait for a process at ``point`` and SIGKILL workers (or restart the daemon); what was done."""
    fault = {"point": point, "how": how, "hit": False}
    deadline = time.time() + POINT_TIMEOUT_S
    while time.time() < deadline:
        target = find_target(point, marks_file, workchains, used)
        if target:
            break
        if all(node.is_terminated for node in workchains):
            fault["missed_because"] = "every job had finished"
            return fault
        time.sleep(0.1)
    else:
        fault["missed_because"] = f"no process in that state within {POINT_TIMEOUT_S} s"
        return fault
    used.add(target["pk"])
    import daemon_jobs as jobs

    fault["in_transit"] = jobs.in_transit()  # CalcJobs a kill may catch between upload, submission and job id
    try:  # circus may report no worker for a moment (e.g. just after the previous fault's respawn)
        pids = wait_for_workers(profile, WORKERS, timeout=60)
    except TimeoutError:
        pids = worker_pids(profile)
    if not pids:
        fault["missed_because"] = "circus reported no daemon worker to kill"
        return fault
    start = time.time()
    if how == "restart":
        fault["restart"] = restart_daemon(profile)
        killed = pids
    else:
        killed = kill_workers(pids if how == "all" else [random.choice(pids)])
    # a CalcJob a worker stored after the snapshot above and before it died (or, in a restart, before its graceful
    # stop took it down) is in transit at this fault too: read again right after the kill or the restart and keep
    # both (after a restart the new workers may have stored a few more: counted in transit, never lost)
    known = {row["uuid"] for row in fault["in_transit"]}
    fault["in_transit"] += [row for row in jobs.in_transit() if row["uuid"] not in known]
    try:
        new = wait_for_workers(profile, WORKERS, exclude=tuple(killed), timeout=90)
    except TimeoutError:  # a restart that gave up on a loaded machine: start the daemon again
        fault["daemon_started_again"] = verdi(profile, "daemon", "start", str(WORKERS), check=False,
                                              timeout=300).returncode
        new = wait_for_workers(profile, WORKERS, exclude=tuple(killed), timeout=180)
    fault.update(hit=True, at_s=round(start - t0, 1), target=target, workers_before=pids,
                 workers_killed=killed,
                 workers_after=new, respawn_s=round(time.time() - start, 1))
    time.sleep(SETTLE_S)  # let the new workers load their processes before the next fault
    return fault


def pause_play(profile: str, pw_code, marks_file, distance: float) -> tuple[dict, object]:
    """Pause a pw.x CalcJob while pw.x runs; after pw.x ended it must stay paused and unretrieved; then
    play."""
    from aiida import orm
    from aiida.engine import submit

    import daemon_jobs as jobs
    from aiida_reactmlip.workflows.label import LabelWorkChain

    # a 12 Å box: pw.x runs long enough (tens of seconds) for verdi to pause it while it runs
    workchain = submit(LabelWorkChain, **jobs.label_inputs({"h2": jobs.h2_structure(distance, 12.0)},
                                                           pw_code))
    calc = None
    deadline = time.time() + POINT_TIMEOUT_S
    while calc is None and time.time() < deadline:
        running = [row for row in jobs.running_jobs(marks_file, "PwCalculation")
                   if orm.load_node(row["pk"]).caller and orm.load_node(row["pk"]).caller.caller.pk == workchain.pk]
        calc = orm.load_node(running[0]["pk"]) if running else None
        time.sleep(0.1)
    result = {"workchain_uuid": workchain.uuid, "found_running": calc is not None}
    if calc is None:
        return result, workchain
    verdi(profile, "process", "pause", str(calc.pk), timeout=120)
    result["paused_state"] = [getattr(calc.process_state, 'value', 'none'), calc.paused]
    workdir = calc.get_remote_workdir()
    while marks_by_workdir(read_marks(marks_file), "end").get(workdir, 0) == 0 and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(6)  # several poll intervals after pw.x ended
    result["after_pw_ended"] = {"state": getattr(calc.process_state, 'value', 'none'), "paused": calc.paused,
                                "retrieved": "retrieved" in calc.outputs}
    verdi(profile, "process", "play", str(calc.pk), timeout=120)
    played = time.time()
    if not jobs.wait_terminated([calc], PLAY_WAIT_S):
        # aiida-core 2.9.4: the job list keeps the paused job's cancelled update request; after play
        # every update
        # fails ("Expected pending job info future") and is retried with exponential backoff
        # (minutes). A daemon
        # restart gives the process a fresh job list.
        result["stuck_after_play_s"] = PLAY_WAIT_S
        result["restart"] = restart_daemon(profile)
        # the reloaded process is paused again (its checkpoint kept the pause, although the node says not paused):
        # it waits for a second play
        wait_for_workers(profile, WORKERS, timeout=180)
        result["played_again"] = 0
        deadline_play = time.time() + 180
        while time.time() < deadline_play and calc.process_status == "Transport task update was cancelled" \
                and not calc.is_terminated:  # a play before a new worker has loaded the process is lost: repeat
            verdi(profile, "process", "play", str(calc.pk), check=False, timeout=120)
            result["played_again"] += 1
            time.sleep(10)
    jobs.wait_terminated([workchain], 600)
    result["play_to_finished_s"] = round(time.time() - played, 1)
    result["update_errors_after_play"] = sum(1 for log in orm.Log.collection.get_logs_for(calc)
                                             if "Expected pending job info future" in log.message)
    result.update(calc_uuid=calc.uuid, final_state=getattr(calc.process_state, 'value', 'none'), exit_status=calc.exit_status,
                  pw_starts=marks_by_workdir(read_marks(marks_file), "start").get(workdir, 0),
                  workchain_exit_status=workchain.exit_status)
    return result, workchain


def kill_and_rerun(profile: str, pw_code, marks_file, distances) -> tuple[dict, list]:
    """``verdi process kill`` a 3-frame label WorkChain mid-run; resubmit the same inputs with pw.x caching
    on."""
    from aiida import orm
    from aiida.engine import submit

    import daemon_jobs as jobs
    from aiida_reactmlip.workflows.label import LabelWorkChain

    structures = {f"h2_{i}": jobs.h2_structure(d, box) for i, (d, box) in enumerate(distances)}
    inputs = jobs.label_inputs(structures, pw_code)
    workchain = submit(LabelWorkChain, **inputs)

    def calcs():
        return [c for c in orm.load_node(workchain.pk).called_descendants if isinstance(c, orm.CalcJobNode)]

    deadline = time.time() + POINT_TIMEOUT_S
    while time.time() < deadline:
        running = [row for row in jobs.running_jobs(marks_file,
                                                    "PwCalculation") if row["pk"] in {c.pk for c in calcs()}]
        if running and any(c.is_finished_ok for c in calcs()):
            break
        if workchain.is_terminated:
            break
        time.sleep(0.1)
    finished_before = len([c for c in calcs() if c.is_finished_ok])
    running_workdirs = [c.get_remote_workdir() for c in calcs() if not c.is_terminated]
    verdi(profile, "process", "kill", str(workchain.pk), timeout=180)
    jobs.wait_terminated([workchain], 120)
    time.sleep(3)
    descendants = orm.load_node(workchain.pk).called_descendants
    finished_ok = sorted(c.uuid for c in calcs() if c.is_finished_ok)
    result = {
        "workchain_uuid": workchain.uuid, "state": getattr(workchain.process_state, 'value', 'none'),
        "had_dataset": "dataset" in workchain.outputs,
        "pw_finished_before_kill": finished_before, "pw_finished_ok": len(finished_ok),
        "descendants": sorted(f"{d.process_label} {getattr(d.process_state, 'value', 'none')} {d.exit_status}" for d in descendants),
        "descendant_states": sorted({getattr(d.process_state, 'value', 'none') for d in descendants}),
        "descendants_active": sum(1 for d in descendants if not d.is_terminated),
        "pw_processes_left_running": len(jobs.pw_processes_in(running_workdirs)),
    }
    starts_before = sum(1 for m in read_marks(marks_file) if m["event"] == "start" and m["code"] == "pw-marked")
    rerun = submit(LabelWorkChain, **inputs)
    jobs.wait_terminated([rerun], 300)
    rerun_calcs = [c for c in orm.load_node(rerun.pk).called_descendants if isinstance(c, orm.CalcJobNode)]
    cached = [c for c in rerun_calcs if c.base.caching.get_cache_source()]
    starts_after = sum(1 for m in read_marks(marks_file) if m["event"] == "start" and m["code"] == "pw-marked")
    result["rerun"] = {
        "uuid": rerun.uuid, "exit_status": rerun.exit_status, "calcjobs": len(rerun_calcs), "cached": len(cached),
        "new": len(rerun_calcs) - len(cached), "pw_started": starts_after - starts_before,
        "cached_from_killed_run": sorted(c.base.caching.get_cache_source() for c in cached) == finished_ok,
        "frames": rerun.outputs.dataset.n_frames if "dataset" in rerun.outputs else 0,
    }
    return result, [workchain, rerun]


def main(repository_dir: str, size: str) -> dict:
    spec = SIZES[size]
    result: dict = {"size": size, "workers": WORKERS, "labels": spec["labels"],
                    "frames_per_label": spec["frames"],
                    "finetunes": spec["finetunes"]}
    t_start = time.time()
    marks_file = pathlib.Path(repository_dir).resolve().parent / "marks.log"
    with throwaway_profile(repository_dir, options=PROFILE_OPTIONS, result=result) as profile:
        from aiida import orm
        from aiida.engine import submit

        import daemon_jobs as jobs
        from aiida_reactmlip import provision
        from aiida_reactmlip.workflows.label import LabelWorkChain
        from aiida_reactmlip.workflows.restart import FinetuneBaseWorkChain
        from psql_profile import marked_code

        computer = provision.ensure_localhost()
        codes = provision.ensure_codes(computer)
        provision.ensure_debian_pseudo_family()
        base_model = provision.ensure_registry_models(["chgnet-0.3.0"])["chgnet-0.3.0"]
        pw_code = marked_code("pw-marked", codes["pw"], marks_file)
        runner_code = marked_code("runner-marked", codes["runner"], marks_file, "export OMP_NUM_THREADS=1")
        start_daemon(profile, WORKERS)

        # ---- phase 1: jobs under fault injection
        t0 = time.time()
        labels, names = [], {}
        distance = 0.70
        for index in range(spec["labels"]):
            structures = {}
            for frame in range(spec["frames"]):
                structures[f"h2_{frame}"] = jobs.h2_structure(distance)
                distance += 0.01
            node = submit(LabelWorkChain, **jobs.label_inputs(structures, pw_code))
            labels.append(node)
            names[node.pk] = [s.base.extras.get("name") for s in structures.values()]
        finetunes = [submit(FinetuneBaseWorkChain, **jobs.finetune_inputs(runner_code, base_model, seed))
                     for seed in range(spec["finetunes"])]
        workchains = labels + finetunes
        used: set = set()
        result["faults"] = [inject(profile, point, how, marks_file, workchains, used, t0)
                            for point, how in spec["faults"]]
        verdi(profile, "daemon", "incr", "1", timeout=120)
        result["workers_after_incr"] = len(wait_for_workers(profile, WORKERS + 1))
        finished_in_time = jobs.wait_terminated(workchains, 600 if size == "small" else 900)
        result["phase1_seconds"] = round(time.time() - t0, 1)
        result["phase1_all_terminated"] = finished_in_time
        verdi(profile, "daemon", "decr", "1", timeout=120)

        # ---- phase 2: pause/play, kill, cached rerun
        # distances not used in phase 1, so that nothing there is a cache source here
        result["pause_play"], paused_workchain = pause_play(profile, pw_code, marks_file, 1.30)
        result["kill"], kill_nodes = kill_and_rerun(profile, pw_code, marks_file, [(1.10, 6.0), (1.15, 6.0),
                                                                                   (1.20, 14.0)])

        # ---- accounting over the whole database
        accounting = jobs.job_accounting(marks_file)
        killed_tree = {d.pk for d in orm.load_node(kill_nodes[0].pk).called_descendants} | {kill_nodes[0].pk}
        processes = orm.QueryBuilder().append(orm.ProcessNode).all(flat=True)
        expected_ok = [p for p in processes if p.pk not in killed_tree]
        result["processes"] = {
            "total": len(processes), "in_killed_tree": len(killed_tree),
            "finished_ok": sum(1 for p in expected_ok if p.is_finished_ok),
            "not_finished_ok": [f"{p.process_label}<{p.pk}> {getattr(p.process_state, 'value', 'none')} {p.exit_status}"
                                for p in expected_ok if not p.is_finished_ok],
        }
        result["labels_accounting"] = [jobs.label_accounting(node, names[node.pk]) for node in labels]
        result["finetune_accounting"] = [
            {"uuid": node.uuid, "exit_status": node.exit_status,
             "calcjobs": sum(1 for c in node.called if isinstance(c, orm.CalcJobNode)),
             "model_uuid": node.outputs.model.uuid if "model" in node.outputs else None}
            for node in finetunes]
        totals = accounting["totals"]
        in_transit = {row["uuid"] for fault in result["faults"] for row in fault.get("in_transit", [])}
        pw_totals, ft_totals = totals.get("PwCalculation", {}), totals.get("FinetuneCalculation", {})
        result["summary"] = {
            "faults_injected": sum(1 for f in result["faults"] if f["hit"]),
            "faults_planned": len(spec["faults"]),
            "workers_killed": sum(len(f.get("workers_killed", [])) for f in result["faults"]),
            "top_level_finished_ok": sum(1 for n in workchains if n.is_finished_ok),
            "top_level": len(workchains),
            "pw_calcjobs": pw_totals.get("calcjobs", 0), "pw_cached": pw_totals.get("cached", 0),
            "pw_starts": pw_totals.get("executable_starts", 0), "pw_repeated": pw_totals.get("repeated", 0),
            "pw_never_started": pw_totals.get("never_started", 0),
            "pw_killed_before_start": pw_totals.get("killed_before_start", 0),
            "finetune_calcjobs": ft_totals.get("calcjobs",
                                               0), "finetune_starts": ft_totals.get("executable_starts", 0),
            "finetunes_repeated": ft_totals.get("repeated", 0)
            + sum(max(0, f["calcjobs"] - 1) for f in result["finetune_accounting"]),
            "labels_expected": sum(a["expected_frames"] for a in result["labels_accounting"]),
            "labels_lost": sum(a["lost"] for a in result["labels_accounting"]),
            "labels_lost_without_remote_folder": sum(a["lost_without_remote_folder"]
                                                     for a in result["labels_accounting"]),
            "calcjobs_ok_without_remote_folder": len(accounting["finished_ok_without_remote_folder"]),
            "labels_duplicated": sum(a["duplicated"] for a in result["labels_accounting"]),
            "pw_calcjobs_per_structure_max": max(max(a["pw_calcjobs_per_structure"] or [0])
                                                 for a in result["labels_accounting"]),
            "pw_reruns_after_success": sum(a.get("pw_reruns_after_success", 0) for a in result["labels_accounting"]),
            "shared_workdirs": accounting["shared_workdirs"], "unknown_workdirs": len(accounting["unknown_workdirs"]),
            "in_transit_at_a_fault": len(in_transit),
            "repeated_outside_transit": sum(max(0, row["starts"] - 1) for row in accounting["rows"]
                                            if row["uuid"] not in in_transit),
            "no_remote_folder_outside_transit": len(set(accounting["finished_ok_without_remote_folder"]) - in_transit),
            "never_started_outside_transit": sum(1 for row in accounting["rows"] if not row["cached_from"]
                                                 and row["starts"] == 0 and row["state"] != "killed"
                                                 and row["uuid"] not in in_transit),
            "duplicate_job_ids": accounting["duplicate_job_ids"], "aiida_out_files": accounting["aiida_out_files"],
            "resubmissions_not_run": accounting["resubmissions_not_run"],
        }
        result["node_uuids"] = {"labels": [n.uuid for n in labels], "finetunes": [n.uuid for n in finetunes],
                                "pause_play": paused_workchain.uuid, "killed": kill_nodes[0].uuid,
                                "rerun": kill_nodes[1].uuid}
        result["calcjobs"] = [{k: row[k] for k in ("uuid", "label", "starts", "cached_from", "exit_status",
                                                   "remote_folder")}
                              for row in accounting["rows"]]
    result["wall_seconds"] = round(time.time() - t_start, 1)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository_dir")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    args = parser.parse_args()
    print_result(main(args.repository_dir, args.size))
