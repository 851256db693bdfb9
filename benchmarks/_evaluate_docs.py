"""The ``evaluate`` benchmark's committed record and the docs table generated from it (no AiiDA).

``python -m benchmarks.evaluate --frames 500 --write-docs`` measures, then :func:`write_docs` writes
``docs/results/evaluate-cpu.json`` (the numbers, the command, git commit, machine, load) and replaces the
block ``evaluate-cpu`` of ``docs/benchmark.md`` with :func:`render_markdown` of that JSON;
``python -m benchmarks.evaluate --docs-only`` regenerates the block from the JSON alone.
``tests/test_benchmark_docs.py`` checks that the block is the rendering of the JSON.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULT_JSON = ROOT / "docs" / "results" / "evaluate-cpu.json"
DOCS = ROOT / "docs" / "benchmark.md"
BLOCK = "evaluate-cpu"
COMMAND = "python -m benchmarks.evaluate"

#: The figure's goal (issue 17): CalcJob wall / best plain baseline wall, inverted: plain / CalcJob >= 1.
GOAL_RATIO = 1.0
#: Issue 17: a job's whole time at most this many times its bare inference.
GOAL_BARE_FACTOR = 1.25
#: how the docs name the registry models
DISPLAY_NAMES = {"chgnet-0.3.0": "CHGNet 0.3.0", "sevennet-0": "SevenNet-0"}

#: the CalcJob path's fixed costs, as ``fixed_costs_seconds`` of a result groups them (columns, in order)
FIXED_COST_COLUMNS = {
    "runner_start_and_imports": "runner start + imports (+ poll wait) s",
    "model_load": "model load s",
    "frame_io": "frame I/O s",
    "aiida_engine": "AiiDA engine s",
}


def docs_record(result: dict[str, Any], command: str) -> dict[str, Any]:
    """What ``docs/results/evaluate-cpu.json`` holds: :func:`provenance` (command, date, commit, machine,
    load) and the benchmark's parameters and per-model results (seconds unless a key says otherwise)."""
    from aiida_reactmlip.report.docs_blocks import provenance

    from ._common import _jsonable

    record = provenance(command)
    machine = result.get("machine", {})
    record["machine"].update({key: machine.get(key) for key in ("cpu_model", "accelerator")})
    record["versions"] = machine.get("versions")
    record["cpu_busy_fraction_at_start"] = machine.get("cpu_busy_fraction_at_start")
    # provenance's load_average is the load when the record is written, at the end of the run
    start_load = machine.get("load_average_at_start")
    record["load_average_at_start"] = [round(x, 2) for x in start_load] if start_load else None
    record["benchmark"] = result.get("benchmark")
    record["parameters"] = result["parameters"]
    results = {}
    for name, per_model in result["results"].items():
        per_model = dict(per_model)
        # the node's pk in a throw-away profile means nothing once the profile is gone
        per_model["calcjob"] = {k: v for k, v in per_model["calcjob"].items() if k != "node_pk"}
        results[name] = per_model
    record["results"] = results
    record["ok"] = result.get("ok")
    if "benchmark_wall_seconds" in result:
        record["benchmark_wall_seconds"] = result["benchmark_wall_seconds"]
    return _jsonable(record)


def write_docs(result: dict[str, Any], command: str) -> pathlib.Path:
    """Write ``docs/results/evaluate-cpu.json`` from a benchmark result, then the docs block from the JSON."""
    text = json.dumps(docs_record(result, command), indent=2) + "\n"
    RESULT_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULT_JSON.write_text(text)
    write_docs_block(json.loads(text))
    return RESULT_JSON


def write_docs_block(record: dict[str, Any] | None = None) -> None:
    """Replace block ``evaluate-cpu`` of ``docs/benchmark.md`` with the rendering of ``record`` (default: the
    committed JSON)."""
    from aiida_reactmlip.report.docs_blocks import write_block

    if record is None:
        record = json.loads(RESULT_JSON.read_text())
    write_block(DOCS, BLOCK, render_markdown(record))


# ------------------------------------------------------------------------------------- rendering


def _f(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _e(value: float | None) -> str:
    return "n/a" if value is None else "0" if value == 0 else f"{value:.0e}"


def _wrap(text: str, **options: Any) -> str:
    """A paragraph wrapped at 105 characters, as the hand-written Markdown around it."""
    import textwrap

    return textwrap.fill(text, width=105, break_long_words=False, break_on_hyphens=False, **options)


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word}es" if word.endswith("s") else f"{count} {word}s"


def _settings(settings: Any) -> str:
    """The runner settings as the JSON records them: a dict, or a sentence for the defaults."""
    if isinstance(settings, dict):
        return ", ".join(f"`{key}: {value}`" for key, value in settings.items()) + " (the rest default)"
    return str(settings)


def _ratios(r: dict[str, Any], kind: str) -> str:
    """``one process / N processes``, the best plain baseline (the issue's figure) in bold."""
    by_baseline = r[f"ratio_{kind}_by_baseline"]
    cells = []
    for key in ("loop", "loop_parallel"):
        text = _f(by_baseline.get(key), 2)
        cells.append(f"**{text}**" if r["best_baseline"][kind] == key else text)
    return " / ".join(cells)


def render_markdown(record: dict[str, Any]) -> str:
    """The docs block from the JSON: the CalcJob path against both plain loops, fixed costs, agreement."""
    from aiida_reactmlip.report.docs_blocks import markdown_table

    params = record["parameters"]
    n = params["n_frames"]
    commit = (record.get("git_commit") or "unknown")[:10]
    dirty = " with uncommitted changes" if record.get("git_dirty") else ""
    start_load = " / ".join(f"{x:.2f}" for x in record.get("load_average_at_start") or [])
    end_load = " / ".join(f"{x:.2f}" for x in record.get("load_average") or [])
    busy = [v.get("busy_fraction") for r in record["results"].values()
            for v in (r.get("cpu_busy_fraction_before") or {}).values()]
    busy = [b for b in busy if b is not None]
    machine = record["machine"]
    lines = [_wrap(
        f"`{record['command']}` ({record['generated'][:10]}, commit `{commit}`{dirty}): {n} frames x "
        f"{params['n_atoms_per_frame']} atoms, {machine['logical_cores']} cores "
        f"({machine.get('cpu_model')}), "
        f"CPU only, load average (1/5/15 min) {start_load or 'n/a'} at the start, {end_load} at the end"
        + (f", CPUs at most {100 * max(busy):.0f}% busy just before a measurement" if busy else "")
        + f", localhost polled every {params.get('minimum_job_poll_interval_s')} s, runner settings "
        f"{_settings(params.get('evaluate_settings'))}. Ratio = plain loop wall / CalcJob wall (>= 1: the "
        "CalcJob path is as fast as that plain loop or faster); in bold the best (fastest) plain baseline, "
        "the issue's figure."), ""]
    rows = []
    for name, r in record["results"].items():
        c, one, many = r["calcjob"], r["loop"], r["loop_parallel"]
        rows.append([
            DISPLAY_NAMES.get(name, name),
            f"{c.get('mode')}, {_plural(c.get('workers') or 1, 'process')} x "
            f"{_plural(c.get('torch_threads') or 0, 'thread')}",
            f"{_f(c['total_seconds'])} ({_f(c['evaluation_seconds'])})",
            f"1 x {_plural(one['torch_threads'], 'thread')}: {_f(one['total_seconds'])} "
            f"({_f(one['evaluation_seconds'])})",
            f"{many['processes']} x {_plural(many['torch_threads'], 'thread')}: {_f(many['total_seconds'])} "
            f"({_f(many['evaluation_seconds'])})",
            _ratios(r, "total"),
            _ratios(r, "eval"),
        ])
    lines.append(markdown_table(
        ["model", "CalcJob: runner", "CalcJob s (runner evaluation)", "plain loop, 1 process: s (evaluation)",
         "plain loop, runner's processes x threads: s (evaluation)", "ratio total: 1 process / N processes",
         "ratio eval: 1 process / N processes"], rows))
    goal = []
    for name, r in record["results"].items():
        ratio = r["ratio_total"]
        state = "met" if ratio >= GOAL_RATIO else f"{100 * (1 - ratio / GOAL_RATIO):.0f} % short"
        goal.append(f"{DISPLAY_NAMES.get(name, name)} {_f(ratio, 2)} ({state})")
    bare = []
    for name, r in record["results"].items():
        inference = min(r["loop"]["evaluation_seconds"], r["loop_parallel"]["evaluation_seconds"])
        factor = r["calcjob"]["total_seconds"] / inference
        state = "met" if factor <= GOAL_BARE_FACTOR else f"missed by {factor - GOAL_BARE_FACTOR:.2f}"
        bare.append(f"{DISPLAY_NAMES.get(name, name)} {_f(factor, 2)} ({state})")
    lines += [
        "",
        _wrap(f"Goal of issue 17: the CalcJob path at least as fast as the best plain baseline (ratio total >= "
              f"{GOAL_RATIO:g}): " + "; ".join(goal) + "."),
        "",
        _wrap(f"Goal of issue 17: a 500-frame job within {GOAL_BARE_FACTOR:g}x of its bare inference (the CalcJob's "
              "whole time over the faster plain loop's own evaluation, imports and model load apart): "
              + "; ".join(bare) + "."),
        "",
        _wrap("CalcJob s: the dataset node and `run_get_node`; plain loop s: fresh Python processes "
              "(imports, model load, loop), N of them started at once on 1/N of the frames each, from the "
              "first start to the last end; evaluation of N processes: the slowest process's own loop. The "
              "CalcJob path's fixed costs per job (besides the runner's evaluation; `fixed_costs_seconds` in "
              "the JSON):"),
        "",
    ]
    rows = []
    for name, r in record["results"].items():
        costs = r["fixed_costs_seconds"]
        rows.append([DISPLAY_NAMES.get(name, name), *(_f(costs[key]) for key in FIXED_COST_COLUMNS),
                     _f(costs["total"]), _f(1000 * costs["total"] / n),
                     _f(r["loop"]["imports_seconds"] + r["loop"]["model_load_seconds"])])
    lines.append(markdown_table(
        ["model", *FIXED_COST_COLUMNS.values(), "total s", "ms/frame", "plain loop: imports + model load s"],
        rows))
    lines += ["", _wrap("Runner start: interpreter, imports and the scheduler's poll latency; frame I/O: "
                        "the dataset node, the frames archive (frames.npz), the runner reading frames and "
                        "writing predictions, parsing them; AiiDA engine: process set-up, upload, submit, retrieve, storing "
                        "outputs, state changes.")]
    notes = []
    for name, r in record["results"].items():
        c = r["calcjob"]
        diffs = [r["max_abs_diff"], r["max_abs_diff_parallel"]]
        agree = "agree" if all(d["agree"] for d in diffs) else "**disagree**"
        note = (f"{DISPLAY_NAMES.get(name, name)}: the CalcJob's predictions and the plain loops' {agree} "
                f"(max |dE| {_e(max(d['energy_eV'] for d in diffs))} eV, max |dF| "
                f"{_e(max(d['forces_eV_per_A'] for d in diffs))} eV/Å, max |dS| "
                f"{_e(max(d['stress_eV_per_A3'] for d in diffs))} eV/Å³)")
        if (c.get("workers") or 1) > 1 and c.get("frames_by_helpers") is not None:
            note += (f"; the runner's helper processes evaluated {c['frames_by_helpers']} of the {n} frames, "
                     f"their model load took up to {_f(c.get('worker_load_seconds'))} s while the runner "
                     "already evaluated")
        notes.append(_wrap(f"- {note}.", subsequent_indent="  "))
    lines += ["", *notes]
    return "\n".join(lines)
