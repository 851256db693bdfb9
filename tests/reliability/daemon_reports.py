"""The committed results of the daemon scenarios and their blocks of docs/reliability.md (pure: no AiiDA).

``docs/results/reliability-daemon-faults.json`` and ``docs/results/reliability-concurrency.json`` hold a
scenario's
RESULT dict under ``result`` beside :func:`~aiida_reactmlip.report.docs_blocks.provenance`; the blocks
``reliability-daemon-faults`` and ``reliability-concurrency`` of docs/reliability.md are ``render_*`` of them.
"""

from __future__ import annotations

import json
import pathlib

from aiida_reactmlip.report.docs_blocks import REPO_ROOT, markdown_table, provenance, write_block

PAGE = REPO_ROOT / "docs" / "reliability.md"
FAULTS_JSON = REPO_ROOT / "docs" / "results" / "reliability-daemon-faults.json"
CONCURRENCY_JSON = REPO_ROOT / "docs" / "results" / "reliability-concurrency.json"
FAULTS_BLOCK = "reliability-daemon-faults"
CONCURRENCY_BLOCK = "reliability-concurrency"
FAULTS_COMMAND = ".venv/bin/python tests/reliability/daemon_faults_run.py"
CONCURRENCY_COMMAND = ".venv/bin/python -m benchmarks daemon_concurrency"


def _load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text())


def _header(record: dict) -> str:
    load = ", ".join(f"{x:g}" for x in record.get("load_average", []))
    commit = (record.get("git_commit") or "?")[:10]
    return (f"Measured {record['generated']} on commit {commit}{' (uncommitted changes)' if record.get('git_dirty') else ''}, "
            f"{record['machine']['logical_cores']} cores, load average {load} at the end; regenerate with "
            f"`{record['command']}` (writes `docs/results/{record['file']}`).")


def render_faults(record: dict) -> str:
    """The ``reliability-daemon-faults`` block of ``record`` (the faults JSON)."""
    result = record["result"]
    summary = result["summary"]
    lines = [_header(record), "",
             f"{result['labels']} `reactmlip.label` WorkChains ({result['frames_per_label']} H2 frames each, real "
             f"serial pw.x) and {result['finetunes']} `reactmlip.finetune_base` WorkChains (CHGNet 0.3.0, 4 frames, "
             f"1 epoch) on a daemon of {result['workers']} workers, PostgreSQL + RabbitMQ. Faults injected "
             f"({summary['faults_injected']} of {summary['faults_planned']} planned; circus started new workers "
             "after each):", ""]
    rows = []
    for index, fault in enumerate(result["faults"], 1):
        if not fault["hit"]:
            rows.append([index, fault["point"], fault["how"], "missed: " + fault.get("missed_because", ""),
                         "", ""])
            continue
        target = fault["target"]
        rows.append([index, fault["point"], {"all": "SIGKILL every worker", "one": "SIGKILL one worker",
                                              "restart": "daemon stop, process repair, start"}[fault["how"]],
                     f"{target['label']}<{target['pk']}> at {fault['at_s']} s", target.get("status") or "",
                     f"{len(fault['workers_killed'])} / {fault['respawn_s']} s"])
    lines.append(markdown_table(["#", "fault point", "fault", "process hit (time after submission)",
                                 "its status then", "workers killed / back after"], rows))
    lines += ["", "What the database and the job scripts' own start marks say afterwards:", ""]
    pause, kill = result["pause_play"], result["kill"]
    rerun = kill["rerun"]
    checks = [
        ["processes finished ok (exit 0), outside the killed tree",
         f"{result['processes']['finished_ok']} of {result['processes']['total'] - result['processes']['in_killed_tree']}"],
        ["submitted WorkChains finished ok", f"{summary['top_level_finished_ok']} of {summary['top_level']}"],
        ["pw.x CalcJobs / pw.x starts / repeated", f"{summary['pw_calcjobs'] - summary['pw_cached']} run, "
         f"{summary['pw_starts']} starts, **{summary['pw_repeated']} repeated** ({summary['pw_cached']} cached)"],
        ["jobs run twice whose submission no kill interrupted", f"**{summary['repeated_outside_transit']}** "
         f"({summary['in_transit_at_a_fault']} CalcJob(s) were uploading or submitting at a kill)"],
        ["CalcJobs finished ok without `remote_folder` (all interrupted between upload and submission)",
         f"{summary['calcjobs_ok_without_remote_folder']}, frames whose PwBaseWorkChain failed on it "
         f"{summary['labels_lost_without_remote_folder']}"],
        ["job scripts submitted twice whose second submission the run-once guard ended unrun",
         summary.get("resubmissions_not_run", "not measured (before the guard)")],
        ["pw.x CalcJobs per labelled structure (max; 2: a first that gave nothing usable, run once more)",
         summary["pw_calcjobs_per_structure_max"]],
        ["fine-tune CalcJobs / runner starts / repeated",
         f"{summary['finetune_calcjobs']} / {summary['finetune_starts']} "
         f"/ **{summary['finetunes_repeated']}**"],
        ["labels expected / lost / duplicated",
         f"{summary['labels_expected']} / **{summary['labels_lost']}** / "
         f"**{summary['labels_duplicated']}**"],
        ["working directories shared or unknown, duplicate job ids",
         f"{summary['shared_workdirs']}, {summary['unknown_workdirs']}, {summary['duplicate_job_ids']}"],
        ["`verdi process pause` while pw.x ran: after pw.x ended",
         f"{pause.get('after_pw_ended', {}).get('state')}, paused {pause.get('after_pw_ended', {}).get('paused')}, "
         f"retrieved {pause.get('after_pw_ended', {}).get('retrieved')}"],
        ["... then `verdi process play`", f"{pause.get('final_state')} exit {pause.get('exit_status')} "
         f"{pause.get('play_to_finished_s')} s after play"
         + (f" (stuck {pause['stuck_after_play_s']} s, {pause['update_errors_after_play']} failed updates: daemon "
            "stopped, processes repaired, started, then played again: the reloaded process was paused again)"
            if "stuck_after_play_s" in pause else "") + f", pw.x started {pause.get('pw_starts')} time(s)"],
        ["`verdi process kill` of a 3-frame label WorkChain",
         f"{kill['state']}, dataset stored {kill['had_dataset']}, "
         f"descendants: {'; '.join(kill['descendants'])}; pw.x left running {kill['pw_processes_left_running']}"],
        ["same submission again, caching on", f"exit {rerun['exit_status']}: {rerun['cached']} cached (the "
         f"{kill['pw_finished_ok']} pw.x finished ok in the killed run, {kill['pw_finished_before_kill']} of them "
         f"before the kill), {rerun['new']} new, pw.x started {rerun['pw_started']}, {rerun['frames']} frames"],
    ]
    lines.append(markdown_table(["check", "result"], checks))
    lines += ["",
              f"Whole scenario: {result['wall_seconds']:.0f} s. Node UUIDs of every submitted process and "
              "CalcJob are in the JSON."]
    return "\n".join(lines)


def render_concurrency(record: dict) -> str:
    """The ``reliability-concurrency`` block of ``record`` (the concurrency JSON)."""
    result = record["result"]
    summary = result["summary"]
    seconds = result["evaluate_seconds"]
    lines = [_header(record), "",
             f"{result['evaluate_jobs']} `reactmlip.evaluate` CalcJobs (CHGNet 0.3.0, 2 Cu frames each, one process, "
             f"one thread) and {result['label_jobs']} `reactmlip.label` WorkChains (one H2 frame, real serial pw.x) on "
             f"{result['workers']} daemon workers, PostgreSQL + RabbitMQ, at most {result['max_active']} jobs in "
             f"flight (localhost's `core.direct` scheduler has no queue), localhost polled every "
             f"{result['computer_poll_interval_s']:g} s, `runner.poll.interval` "
             f"{result['profile_options']['runner.poll.interval']} s.", ""]
    rows = [
        ["jobs finished ok",
         f"{summary['evaluate_finished_ok']} evaluate + {summary['label_finished_ok']} label of "
         f"{summary['jobs']}"],
        ["processes not finished ok (any depth)", len(summary["processes_not_finished_ok"])],
        ["CalcJobs: evaluate / pw.x", f"{summary['evaluate_calcjobs']} / {summary['pw_calcjobs']}"],
        ["executable starts / repeated / never started",
         f"{summary['executable_starts']} / **{summary['repeated']}** "
         f"/ {summary['never_started']}"],
        ["predictions holding their 2 frames", summary["predictions_with_2_frames"]],
        ["labels lost / duplicated", f"**{summary['labels_lost']}** / **{summary['labels_duplicated']}**"],
        ["shared or unknown working directories, duplicate job ids",
         f"{summary['shared_workdirs']}, {summary['unknown_workdirs']}, {summary['duplicate_job_ids']}"],
        ["wall, throughput",
         f"{result['wall_seconds']:.0f} s, **{summary['throughput_jobs_per_min']:.1f} jobs/min**"],
    ]
    lines.append(markdown_table(["check", "result"], rows))
    lines += ["", "Per evaluate job, seconds (mean / median / max):", ""]
    names = {"calcjob_wall": "CalcJob node wall (creation to end)",
             "runner_wall": "the runner's wall (its start and end marks in the job script)",
             "runner_model_load_plus_evaluation": "the runner's model load + evaluation (its `timing` output)",
             "engine_overhead": "**engine overhead** (node wall - runner wall)"}
    lines.append(markdown_table(["what", "mean", "median", "max"],
                                [[names[key], f"{seconds[key].get('mean', 0):.1f}",
                                  f"{seconds[key].get('median', 0):.1f}",
                                  f"{seconds[key].get('max', 0):.1f}"] for key in names]))
    beyond_timing = seconds["calcjob_wall"]["mean"] - seconds["runner_model_load_plus_evaluation"]["mean"]
    lines += ["", f"Node wall minus the runner's own timing, per job (mean): {beyond_timing:.1f} s: the engine's "
              "overhead above plus the runner's Python start and imports (torch, CHGNet), which its timing leaves "
              "out. Throughput is bounded by the 2 cores: every job starts a Python process that imports torch."]
    return "\n".join(lines)


RENDERERS = {FAULTS_BLOCK: render_faults, CONCURRENCY_BLOCK: render_concurrency}


def save(result: dict, path: pathlib.Path, command: str, block: str) -> dict:
    """Write ``result`` with its provenance to ``path`` and the page's ``block`` from it; the record
    written."""
    record = {**provenance(command), "file": path.name, "result": result}
    path.write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    write_block(PAGE, block, RENDERERS[block](_load(path)))
    return record


def rerender() -> None:
    """Rewrite both blocks of docs/reliability.md from the committed JSONs (after a change of the rendering)."""
    for block, path in ((FAULTS_BLOCK, FAULTS_JSON), (CONCURRENCY_BLOCK, CONCURRENCY_JSON)):
        if path.exists():
            write_block(PAGE, block, RENDERERS[block](_load(path)))


if __name__ == "__main__":  # python tests/reliability/daemon_reports.py: the blocks again from the JSONs
    rerender()
