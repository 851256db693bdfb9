"""The evidence protocol on the reaction pools of docs/active-learning.md ("The protocol on two reactions"):
docs/results/loop-protocol.json and its block.

    .venv/bin/python -m benchmarks.loop_protocol run --reaction h-h2-exchange [--splits 1 --runs 5]
    .venv/bin/python -m benchmarks.loop_protocol collect --reaction h-h2-exchange   # the entry from finished loops
    .venv/bin/python -m benchmarks.loop_protocol table      # regenerates the blocks of docs/active-learning.md
                                                            # and docs/finetuning.md
    .venv/bin/python -m benchmarks.loop_protocol archive    # an AiiDA archive of every loop the JSON names
    .venv/bin/python -m benchmarks.loop_protocol refresh    # the JSON's numbers again from its nodes

For each reaction of ``REACTIONS``, ``run`` calls ``reactmlip loop run workchains/loop-<r>-protocol.yaml`` (caching
off) on the >= 200-frame pw.x pool of that reaction (``fixtures/make_dft_pools.py --only h3-pool|nh3-pool``):
committee (4 CHGNet fine-tunes) against random and fps, paired by run (same group split, selection seed and
fine-tune seed), scored on each split's test set. The files' plan: 10 runs spread over 3 group splits (``layout:
spread``, run r on split r mod 3), 30 loops per reaction. ``--splits`` / ``--runs`` run a prefix of it: the entry
and the block then say PARTIAL and how much of the protocol ran. The verdicts are
:func:`aiida_reactmlip.metrics.statistics.compare_strategies` (Wilcoxon signed-rank, bootstrap 95 % CI of the paired
difference) of labels to the target and mean test force MAE over the budget, and
:func:`~aiida_reactmlip.metrics.statistics.compare_mean_errors` of the reactive errors the test set allows.
"""

from __future__ import annotations

import json
import time

from aiida_reactmlip.report.docs_blocks import REPO_ROOT, markdown_table, provenance, write_block
from benchmarks._docs_run import provenance_sentence, run_reactmlip, write_record

RESULT_JSON = REPO_ROOT / "docs" / "results" / "loop-protocol.json"
DOCS = REPO_ROOT / "docs" / "active-learning.md"
BLOCK = "loop-protocol"
#: The summary in docs/finetuning.md: labels to the target per strategy and reaction.
SUMMARY_DOCS = REPO_ROOT / "docs" / "finetuning.md"
SUMMARY_BLOCK = "loop-protocol-summary"
COMMAND = "python -m benchmarks.loop_protocol run"
#: reaction -> its protocol loop file and title.
REACTIONS = {
    "h-h2-exchange": {"file": "loop-h3-protocol.yaml", "title": "H + H2 -> H2 + H"},
    "nh3-inversion": {"file": "loop-nh3-protocol.yaml", "title": "NH3 umbrella inversion"},
}


def loop_file(reaction: str):
    return REPO_ROOT / "workchains" / REACTIONS[reaction]["file"]


def loop_entry(node) -> dict:
    """One finished protocol loop: its place in the plan, seeds, and curves (labels; validation and test errors)."""
    summary = node.outputs.summary.get_dict()
    extras = node.base.extras.all
    entry = {
        "strategy": summary["strategy"], "split": extras.get("evidence_split"), "run": extras.get("evidence_run"),
        "selection_seed": summary["seed"], "finetune_seed": summary.get("finetune_seed"),
        "pk": node.pk, "uuid": node.uuid, "n_labels": summary["n_labels"],
        "validation_force_mae": summary["force_mae"], "test_force_mae": summary["test_force_mae"],
        "seconds": round(sum(row.get("seconds", 0.0) for row in summary["rounds"]), 1),
    }
    entry.update({key: value for key, value in summary.items()
                  if key.startswith("test_") and key.endswith("_mae") and key != "test_force_mae"
                  and isinstance(value, list)})
    info = node.inputs.label_pool.frame_info
    rounds = node.outputs.rounds
    entry["picked_roles"] = [[info[i].get("role", "unknown") for i in rounds[key]["selected"].get_list()]
                             for key in sorted(rounds) if "selected" in rounds[key]]
    return entry


def picks_by_role(entry: dict, first_round: int = 2) -> dict[str, dict[str, int]]:
    """strategy -> {frame role (mlip_md, rattle, scan, image, ...): picks} over every loop of a reaction entry,
    from round ``first_round`` on (round 1 of a committee loop picks at random: nothing to disagree on yet)."""
    counts: dict[str, dict[str, int]] = {}
    for loop in entry["loops"]:
        by_role = counts.setdefault(loop["strategy"], {})
        for roles in loop.get("picked_roles", [])[first_round - 1:]:
            for role in roles:
                by_role[role] = by_role.get(role, 0) + 1
    return counts


def verdicts(loops: list[dict], spec: dict, pool_size: int) -> dict:
    """The paired comparisons of the file's strategy with each baseline, as ``reactmlip loop run`` prints them
    (:func:`aiida_reactmlip.cli.cmd_loop.evidence_verdict_lines`), and their numbers."""
    from aiida_reactmlip.cli.cmd_loop import evidence_censor, evidence_verdict_lines
    from aiida_reactmlip.metrics.statistics import compare_strategies

    ordered = sorted(loops, key=lambda loop: (loop["split"], loop["run"]))
    summaries: dict[str, list[dict]] = {}
    for loop in ordered:
        summaries.setdefault(loop["strategy"], []).append(
            {"n_labels": loop["n_labels"], "test_force_mae": loop["test_force_mae"],
             **{key: value for key, value in loop.items() if key.startswith("test_") and key != "test_force_mae"}})
    target = spec["evidence"]["target"]
    curves = {name: [(s["n_labels"], s["test_force_mae"]) for s in group] for name, group in summaries.items()}
    censor_at, censored_at = evidence_censor(spec, pool_size)
    numbers = compare_strategies(curves, spec["strategy"], float(target["threshold"]), censor_at=censor_at)
    lines = [line.strip() for line in evidence_verdict_lines(summaries, spec, censor_at, censored_at) if line.strip()]
    return {"censor_at": censor_at, "lines": lines, "comparisons": numbers}


def reaction_record(reaction: str, nodes: list, spec: dict, plan: dict) -> dict:
    import ase.io

    from aiida_reactmlip.fixture_data import fixture_metadata, fixture_path

    loops = [loop_entry(node) for node in nodes]
    pool_size = max(node.inputs.label_pool.n_frames for node in nodes)
    fixture = spec["pool"]["fixture"]
    n_frames = len(ase.io.read(fixture_path(fixture), index=":"))
    zero_shot = fixture_metadata(fixture).get("zero_shot", {}).get(spec["model"], {}).get("force_mae")
    return {"title": REACTIONS[reaction]["title"], "pool_fixture": fixture, "pool_frames": n_frames,
            "zero_shot_pool_force_mae": zero_shot,
            "candidates": pool_size, "model": spec["model"], "k": spec["k"], "committee_size": spec["committee_size"],
            "max_dft_labels": spec["max_dft_labels"], "hyperparameters": spec.get("hyperparameters", {}),
            "evidence": spec["evidence"], "partial": plan.get("partial"), "loops": loops,
            "verdicts": verdicts(loops, spec, pool_size)}


def render_reaction(name: str, entry: dict) -> list[str]:
    from aiida_reactmlip.metrics.loop import labels_to_target

    target = entry["evidence"]["target"]["threshold"]
    rows = []
    for loop in sorted(entry["loops"], key=lambda x: (x["split"], x["run"], x["strategy"])):
        curve = " / ".join(f"{e:.3f}" for e in loop["test_force_mae"])
        reached = labels_to_target(loop["n_labels"], loop["test_force_mae"], target)
        rows.append([loop["split"], loop["run"], loop["strategy"], loop["pk"], curve,
                     "not reached" if reached is None else reached])
    labels = " / ".join(str(n) for n in entry["loops"][0]["n_labels"])
    header = ["split", "run", "strategy", "pk", f"test force MAE (eV/Å) at {labels} labels",
              f"labels to {target:g} eV/Å"]
    partial = entry.get("partial")
    spread = entry["evidence"].get("layout") == "spread"
    if not partial:
        scope = "the whole protocol"
    elif spread:
        scope = (f"PARTIAL: {partial['runs'][0]} of {partial['runs'][1]} runs over {partial['splits'][0]} group "
                 "splits; these verdicts are not the protocol's")
    else:
        scope = (f"PARTIAL: {partial['splits'][0]} of {partial['splits'][1]} group splits x {partial['runs'][0]} of "
                 f"{partial['runs'][1]} runs; these verdicts are not the protocol's")
    if spread:
        n_splits = entry["evidence"]["splits"]
        scope += (f"; {entry['evidence']['runs']} runs spread over {n_splits} group splits, run r on split r mod "
                  f"{n_splits}")
    lines = [f"**{entry['title']}** (`{entry['pool_fixture']}`: {entry['pool_frames']} pw.x frames, "
             f"{entry['candidates']} candidates per split; {entry['model']}, k = {entry['k']}, committee of "
             f"{entry['committee_size']}, {entry['max_dft_labels']} labels; {scope})", "",
             markdown_table(header, rows), ""]
    n_runs = len({(loop["split"], loop["run"]) for loop in entry["loops"]})
    seconds = sum(loop["seconds"] for loop in entry["loops"]) / max(1, n_runs)
    lines.append(f"Target {target:g} eV/Å: 0.7 x {entry['model']}'s zero-shot force MAE on the whole pool, "
                 f"{entry['zero_shot_pool_force_mae']:.3f} eV/Å (the fixture's sidecar), rounded to 0.01. Loop time "
                 f"{seconds / 60:.1f} min per run of {len(entry['loops']) // max(1, n_runs)} loops (the loops' own "
                 "round times, two reactions at once on 2 cores).")
    lines.append("")
    lines += [f"- {line}" for line in entry["verdicts"]["lines"]]
    picks = picks_by_role(entry)
    if any(picks.values()):
        lines += ["- frames picked from round 2 on, all runs, by their role in the pool: " + "; ".join(
            f"{strategy} " + ", ".join(f"{role} {n}" for role, n in sorted(roles.items(), key=lambda x: -x[1]))
            for strategy, roles in picks.items())]
    lines += ["", f"![{entry['title']}: test force MAE against DFT labels](img/{figure_path(name).name})"]
    lines += [""]
    if entry.get("loops_made_by") and entry["loops_made_by"] != entry["provenance"]["command"]:
        lines.append(f"Loops run by `{entry['loops_made_by']}`.")
    what = f"the {len(entry['loops'])} loops" + (", the sum of their round times" if "round times" in
                                                 entry.get("wall_seconds_note", "") else "")
    lines += [provenance_sentence(entry, "docs/results/loop-protocol.json", what), ""]
    return lines


def render(record: dict) -> str:
    """The block: per reaction one row per loop (its test-set curve and labels to the target), then the verdicts."""
    lines = []
    for name, entry in record["reactions"].items():
        lines += render_reaction(name, entry)
    return "\n".join(lines).strip("\n")


def render_summary(record: dict) -> str:
    """The block of docs/finetuning.md: per reaction, the DFT labels each strategy needed to reach the target
    on the test set and its mean test error up to the budget (mean ± std over the runs), and the paired
    Wilcoxon p of both, from the same JSON."""
    from aiida_reactmlip.metrics.loop import labels_to_target

    rows = []
    for entry in record["reactions"].values():
        target = entry["evidence"]["target"]["threshold"]
        censor = entry["verdicts"]["censor_at"]
        by: dict[str, list] = {}
        for loop in entry["loops"]:
            reached = labels_to_target(loop["n_labels"], loop["test_force_mae"], target)
            by.setdefault(loop["strategy"], []).append(censor if reached is None else reached)
        cells = []
        for strategy, values in by.items():
            n = len(values)
            mean = sum(values) / n
            std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
            cells.append(f"{strategy} {mean:.1f} ± {std:.1f}")
        comparisons = entry["verdicts"]["comparisons"]
        first = next(iter(comparisons.values()))["mean_error"]
        errors = [f"{first['names'][0]} {first['mean_a']:.3f} ± {first['std_a']:.3f}"]
        errors += [f"{other} {c['mean_error']['mean_b']:.3f} ± {c['mean_error']['std_b']:.3f}"
                   for other, c in comparisons.items()]
        p_values = "; ".join(f"vs {other}: labels p = {c['labels']['wilcoxon_p']:.2g}, mean error p = "
                             f"{c['mean_error']['wilcoxon_p']:.2g}" for other, c in comparisons.items())
        partial = entry.get("partial")
        runs = f"{len(entry['loops']) // len(by)} runs" + (" (PARTIAL protocol)" if partial else "")
        rows.append([entry["title"], f"{entry['pool_frames']} frames", f"{target:g}", runs, "; ".join(cells),
                     "; ".join(errors), p_values])
    header = ["reaction", "pw.x pool", "target test force MAE (eV/Å)", "runs", "DFT labels to the target "
              "(mean ± std; not reached: counted one round past the budget)",
              "mean test force MAE up to the budget (eV/Å)", "Wilcoxon, paired by run"]
    return "\n".join([markdown_table(header, rows), "",
                      "Generated from docs/results/loop-protocol.json (`python -m benchmarks.loop_protocol table`); "
                      "the runs, curves and full verdicts are in docs/active-learning.md, \"The protocol on two "
                      "reactions\"."])


def figure_path(reaction: str):
    return REPO_ROOT / "docs" / "img" / f"loop-protocol-{reaction}.png"


def plot(reaction: str, entry: dict):
    """Mean test force MAE against DFT labels per strategy with its 95 % band over the runs (PNG in docs/img)."""
    from aiida_reactmlip.metrics.statistics import mean_band
    from aiida_reactmlip.report.evidence import plot_mean_band

    by: dict[str, list] = {}
    for loop in sorted(entry["loops"], key=lambda x: (x["split"], x["run"])):
        by.setdefault(loop["strategy"], []).append((loop["n_labels"], loop["test_force_mae"]))
    bands = {strategy: mean_band(curves) for strategy, curves in by.items()}
    partial = " (PARTIAL protocol)" if entry.get("partial") else ""
    return plot_mean_band(bands, figure_path(reaction), target=entry["evidence"]["target"]["threshold"],
                          ylabel="force MAE on the test set (eV/Å)", title=f"{entry['title']}{partial}")


def table() -> None:
    """The two blocks and the figures, from the committed JSON."""
    record = json.loads(RESULT_JSON.read_text())
    write_block(DOCS, BLOCK, render(record))
    write_block(SUMMARY_DOCS, SUMMARY_BLOCK, render_summary(record))
    for reaction, entry in record["reactions"].items():
        plot(reaction, entry)


def _plan(spec: dict, n_splits: int | None, n_runs: int | None) -> dict:
    from aiida_reactmlip.specs.evidence import evidence_plan, partial_plan

    return partial_plan(evidence_plan(spec["evidence"], spec["strategy"]), n_splits, n_runs)


def finished_runs(spec: dict, profile: str | None) -> list:
    """The finished loops of ``spec``'s protocol in the profile (extras ``loop_spec``, ``evidence_split``,
    ``evidence_run``), newest per (split, run, strategy), of the runs whose every strategy finished: a stopped
    protocol run is still read back, up to its last whole run."""
    from aiida import load_profile, orm

    load_profile(profile, allow_switch=True)
    query = orm.QueryBuilder().append(orm.WorkflowNode, filters={
        "attributes.process_label": "ActiveLearningWorkChain", "extras.loop_spec": spec["name"],
        "attributes.exit_status": 0}, project="*")
    latest = {}
    for (node,) in query.all():
        key = (node.base.extras.get("evidence_split"), node.base.extras.get("evidence_run"),
               node.outputs.summary["strategy"])
        if key not in latest or node.ctime > latest[key].ctime:
            latest[key] = node
    strategies = [spec["strategy"], *[b for b in spec["evidence"]["baselines"] if b != spec["strategy"]]]
    runs = sorted({key[:2] for key in latest})
    whole = [run for run in runs if all((*run, strategy) in latest for strategy in strategies)]
    return [latest[(*run, strategy)] for run in whole for strategy in strategies]


def prefix_counts(spec: dict, runs: list[tuple[int, int]]) -> tuple[int, int]:
    """The ``--splits`` / ``--runs`` whose plan prefix would be the finished (split, run) pairs ``runs``."""
    n_splits = len({split for split, _ in runs})
    if spec["evidence"].get("layout") == "spread":  # run numbers count over all splits
        return n_splits, max(run for _, run in runs) + 1
    return n_splits, min(sum(1 for s, _ in runs if s == split) for split in range(n_splits))


def collect(reaction: str, profile: str | None, command: str, wall_seconds: float | None = None,
            made_by: str | None = None) -> dict:
    """A reaction's JSON entry from the loops of its protocol file finished in ``profile``; PARTIAL unless
    they are the whole plan (the runs read back must be a prefix of it: the first splits, the first runs).
    ``made_by``: the command that ran the loops, recorded beside the provenance of this one."""
    from aiida_reactmlip.specs.loop import load_loop_spec

    path = loop_file(reaction)
    spec = load_loop_spec(path)
    nodes = finished_runs(spec, profile)
    if not nodes:
        raise SystemExit(f"no finished run of {path.name} in the profile: run `reactmlip loop run {path}` first")
    runs = sorted({(n.base.extras.get("evidence_split"), n.base.extras.get("evidence_run")) for n in nodes})
    plan = _plan(spec, *prefix_counts(spec, runs))
    if sorted((run["split"], run["run"]) for run in plan["runs"]) != runs:
        raise SystemExit(f"the finished runs {runs} are not a prefix of the plan (the first runs of the first splits;"
                         " spread: the first runs)")
    seconds = sum(sum(row.get("seconds", 0.0) for row in n.outputs.summary["rounds"]) for n in nodes)
    return {"provenance": provenance(command), "loops_made_by": made_by or command,
            "loop_file": str(path.relative_to(REPO_ROOT)),
            "wall_seconds": round(wall_seconds if wall_seconds is not None else seconds, 1),
            "wall_seconds_note": ("the run command's wall time" if wall_seconds is not None else
                                  "the sum of the loops' own round times (collected after the run)"),
            **reaction_record(reaction, nodes, spec, plan)}


def run_reaction(reaction: str, profile: str | None, n_splits: int | None, n_runs: int | None) -> dict:
    path = loop_file(reaction)
    limits = (["--splits", str(n_splits)] if n_splits else []) + (["--runs", str(n_runs)] if n_runs else [])
    start = time.perf_counter()
    run_reactmlip(["loop", "run", str(path), "--no-cache", *limits,
                   "--output", str(REPO_ROOT / "results" / path.stem)], profile)
    return collect(reaction, profile, " ".join([COMMAND, "--reaction", reaction, *limits]),
                   wall_seconds=time.perf_counter() - start)


def write_entry(reaction: str, entry: dict) -> None:
    # read again: another reaction's run may have written its entry meanwhile
    record = json.loads(RESULT_JSON.read_text()) if RESULT_JSON.exists() else {"reactions": {}}
    record["reactions"][reaction] = entry
    record["reactions"] = {name: record["reactions"][name] for name in REACTIONS if name in record["reactions"]}
    write_record(record, RESULT_JSON, table)


def refresh(profile: str | None) -> None:
    """Recompute every reaction's loops and verdicts from the nodes the JSON names (no job runs)."""
    from aiida import load_profile, orm

    from aiida_reactmlip.specs.loop import load_loop_spec

    load_profile(profile, allow_switch=True)
    record = json.loads(RESULT_JSON.read_text())
    for reaction, entry in record["reactions"].items():
        spec = load_loop_spec(REPO_ROOT / entry["loop_file"])
        nodes = [orm.load_node(loop["uuid"]) for loop in entry["loops"]]
        partial = entry.get("partial") or {"splits": [None], "runs": [None]}
        entry.update(reaction_record(reaction, nodes, spec, _plan(spec, partial["splits"][0], partial["runs"][0])))
        entry["refreshed"] = provenance("python -m benchmarks.loop_protocol refresh")
    write_record(record, RESULT_JSON, table)


def _run_arguments(parser) -> None:
    parser.add_argument("--reaction", choices=sorted(REACTIONS), action="append", help="only this reaction (repeatable)")
    parser.add_argument("--splits", type=int, default=None, help="the first N group splits only (a partial run)")
    parser.add_argument("--runs", type=int, default=None,
                        help="the first N runs only (of each split for a crossed layout; a partial run)")


def _run(profile: str | None, args) -> None:
    for reaction in args.reaction or list(REACTIONS):
        write_entry(reaction, run_reaction(reaction, profile, args.splits, args.runs))


def _collect_arguments(parser) -> None:
    parser.add_argument("--reaction", choices=sorted(REACTIONS), action="append", required=True)
    parser.add_argument("--made-by", default=None, help="the command that ran the loops (recorded in the JSON)")


def _collect(args) -> None:
    for reaction in args.reaction:
        write_entry(reaction, collect(reaction, args.profile, f"python -m benchmarks.loop_protocol collect "
                                                              f"--reaction {reaction}", made_by=args.made_by))


def main() -> None:
    from benchmarks._docs_run import script_main

    collect_help = ("the JSON entry of a reaction from its protocol loops finished in the profile (a stopped run: up "
                    "to its last whole run); no job runs")
    script_main(__doc__, _run, table, RESULT_JSON, run_arguments=_run_arguments, refresh=refresh,
                commands={"collect": (collect_help, _collect_arguments, _collect)})


if __name__ == "__main__":
    main()
