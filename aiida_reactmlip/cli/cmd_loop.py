"""``reactmlip loop``: run an active-learning loop from ``workchains/loop-*.yaml``, follow it, show it, report it."""

from __future__ import annotations

import pathlib

import click

from .root import cmd_root, with_profile
from .run_file import check_finished, file_options, load_node_or_fail, run_file, run_with_ticks

#: Process type of the loop WorkChain.
LOOP_PROCESS_TYPE = "aiida.workflows:reactmlip.active_learning"
#: Calculations whose caching makes a rerun of a crashed loop reuse its finished work.
CACHED_IDENTIFIERS = ("aiida.calculations:reactmlip.*", "aiida.calculations:quantumespresso.pw")
#: Extra set on a random-baseline loop: the UUID of the loop it is the baseline of.
BASELINE_EXTRA = "loop_baseline_for"
#: Extra set on loops run from a file: the file's force MAE target (eV/Å), for reports.
TARGET_EXTRA = "loop_target_force_mae"


@cmd_root.group("loop")
def cmd_loop():
    """Active learning: the MLIP explores, DFT labels the few configurations that matter."""


#: reactive errors of a round (eV) -> their label on a progress line (printed in meV)
REACTIVE_LABELS = {"barrier_mae": "barrier", "reaction_energy_mae": "reaction ΔE",
                   "adsorption_energy_mae": "adsorption E", "scan_energy_mae": "scan ΔE"}


def format_row(row: dict, prefix: str = "") -> str:
    """One progress line of a round: labels used, error (and the reactive errors the sets allow), time."""
    energy = row.get("energy_mae_per_atom")
    energy_text = f"  energy MAE {energy:.4f} eV/atom" if energy is not None else ""
    force = row.get("force_mae")
    force_text = f"{force:.4f}" if force is not None else "-"
    reactive = [f"{label} {1000 * row[key]:.0f}" for key, label in REACTIVE_LABELS.items() if row.get(key) is not None]
    reactive_text = f"  |err| {', '.join(reactive)} meV" if reactive else ""
    new = f" (+{row['n_new']}, {row['strategy']})" if row.get("round") else f" ({row.get('strategy')})"
    check = ""
    if row.get("barrier_check_error") is not None:  # the barrier loop's saddle check (of the model before this round)
        check = (f"  saddle check: model {row['mlip_barrier']:.3f} vs DFT {row['dft_saddle_barrier']:.3f} eV "
                 f"(|err| {1000 * row['barrier_check_error']:.0f} meV)")
    return (f"{prefix}round {row['round']}: {row['n_labels']:3d} DFT labels{new}  force MAE {force_text} eV/Å"
            f"{energy_text}{reactive_text}{check}  {row.get('seconds', 0):.1f} s")


def run_loop_with_progress(builder, echo, prefix: str = "", interval: float = 1.0):
    """Run ``builder`` in this interpreter (no daemon needed), printing each round as it finishes."""
    from aiida_reactmlip.workflows.active_learning import PROGRESS_EXTRA

    printed = [0]

    def flush(node):
        rows = node.base.extras.get(PROGRESS_EXTRA, [])
        for row in rows[printed[0]:]:
            echo(format_row(row, prefix))
        printed[0] = len(rows)

    return run_with_ticks(builder, flush, interval)


@cmd_loop.command("run")
@file_options("loop")
@click.option("--seeds", default=None, help="Comma-separated seeds, replacing the file's (e.g. 0,1,2).")
@click.option("--strategy", "strategy_name", default=None, help="Selection strategy, replacing the file's (e.g. fps).")
@click.option("--no-baseline", is_flag=True, help="Skip the random-selection baseline even if the file asks for it.")
@click.option("--splits", "n_splits", type=int, default=None,
              help="Evidence files only: run the first N group splits of the protocol (a partial run, said so in "
              "every verdict; a later full run reuses its loops from the cache).")
@click.option("--runs", "n_runs", type=int, default=None,
              help="Evidence files only: run the first N runs of each split (see --splits); with the file's "
                   "'layout: spread', the first N runs in all.")
@click.option("--cache/--no-cache", default=True, show_default=True,
              help="AiiDA caching of MD, fine-tunes, evaluations and pw.x: a rerun of a crashed or stopped loop "
              "reuses every finished job instead of running it again.")
@click.pass_context
def cmd_loop_run(ctx, file, output, dry_run, seeds, strategy_name, no_baseline, n_splits, n_runs, cache):
    """Run the loop described in FILE (and its random baseline), printing each round, then the final table.

    \b
    Examples:
      reactmlip loop run workchains/loop-ch4-smoke.yaml
      reactmlip loop run workchains/loop-ch4-evidence.yaml --seeds 0 --strategy fps
      reactmlip loop run workchains/loop-h3-protocol.yaml --splits 1 --runs 5 --dry-run
    """
    from aiida_reactmlip.report.loop_report import write_loop_report
    from aiida_reactmlip.specs.loop import load_loop_spec

    def load(path):
        return _with_overrides(load_loop_spec(path), seeds, strategy_name, no_baseline, n_splits, n_runs)

    def report(spec, nodes):
        print_final_table(nodes, spec, click.echo)
        if "evidence" in spec:
            print_evidence_verdicts(nodes, spec, click.echo)
        baselines = nodes.get("random") if spec["strategy"] != "random" else None
        return write_loop_report(nodes[spec["strategy"]], pathlib.Path(output or f"results/{spec['name']}"),
                                 baselines=baselines, target=spec.get("target_force_mae"))

    run_file(ctx, file, dry_run, click.echo, load=load, describe=_describe_loop,
             run=lambda spec: _run_loops(spec, file, cache), report=report)


def _with_overrides(spec: dict, seeds: str | None, strategy: str | None, no_baseline: bool,
                    n_splits: int | None = None, n_runs: int | None = None) -> dict:
    """The loop spec with the command line's seeds and strategy, and ``strategies``: the file's strategy and,
    unless ``no_baseline``, the random baseline it asks for; for an evidence file its plan (``n_splits``,
    ``n_runs``: a prefix of it)."""
    from aiida_reactmlip.workflows.active_learning_inputs import known_strategies

    if "evidence" in spec:
        if seeds or strategy:
            raise click.ClickException("--seeds and --strategy do not apply to a file with an 'evidence' section: "
                                       "its protocol draws the seeds and names the strategies")
        from aiida_reactmlip.specs.evidence import evidence_plan, partial_plan

        try:
            spec["plan"] = partial_plan(evidence_plan(spec["evidence"], spec["strategy"]), n_splits, n_runs)
        except ValueError as exception:
            raise click.ClickException(f"--splits / --runs: {exception}") from exception
        spec["strategies"] = spec["plan"]["runs"][0]["strategies"]
        if no_baseline:
            spec["strategies"] = spec["strategies"][:1]
        return spec
    if n_splits is not None or n_runs is not None:
        raise click.ClickException("--splits and --runs apply to a file with an 'evidence' section only")
    if seeds:
        try:
            spec["seeds"] = [int(s) for s in seeds.split(",")]
        except ValueError as exception:
            raise click.ClickException(f"--seeds must be comma-separated integers, got {seeds!r}") from exception
    if strategy:
        if strategy not in known_strategies():
            raise click.ClickException(f"unknown strategy {strategy!r}; available: {', '.join(known_strategies())}")
        spec["strategy"] = strategy
    spec["strategies"] = [spec["strategy"]]
    if spec["baseline"] == "random" and not no_baseline and spec["strategy"] != "random":
        spec["strategies"].append("random")
    return spec


def _describe_loop(spec: dict) -> None:
    if "evidence" in spec:
        from aiida_reactmlip.specs.evidence import describe_plan

        click.echo(f"loop {spec['name']}: oracle (DFT-labelled pool); model {spec['model']}; k {spec.get('k')}; "
                   f"committee of {spec.get('committee_size', 3)}")
        click.echo(describe_plan(spec["plan"], spec["evidence"]))
        return
    mode = "oracle (DFT-labelled pool)" if "pool" in spec else f"exploration of {spec['explore']['system']}"
    stops = ", ".join(f"{key} {spec[key]}" for key in ("target_force_mae", "target_energy_mae", "target_barrier_error",
                                                       "max_dft_labels", "max_rounds") if spec.get(key) is not None)
    check = "; the saddle check labelled first, the picks only when it fails" if spec.get("check_first") else ""
    click.echo(f"loop {spec['name']}: {mode}; model {spec['model']}; strategies {' vs '.join(spec['strategies'])}; "
               f"k {spec.get('k', 4)}; seeds {spec['seeds']}; stop at {stops}{check}")


def _caching(cache: bool):
    """A context in which the loop's calculations come from the cache when ``cache`` is set."""
    import contextlib

    from aiida.manage.caching import enable_caching

    stack = contextlib.ExitStack()
    if cache:
        for identifier in CACHED_IDENTIFIERS:
            stack.enter_context(enable_caching(identifier=identifier))
    return stack


def _run_one_loop(builder, header: str, extras: dict):
    """One ActiveLearningWorkChain, printing each round under ``header``; ``extras`` are set on its node."""
    click.echo(header)
    node = run_loop_with_progress(builder, click.echo, prefix="  ")
    node.base.extras.set_many(extras)
    check_finished(node, hint="; run the same command again to resume (finished jobs come from the cache)")
    click.echo(f"  stopped: {node.outputs.summary['stop_reason']}; ActiveLearningWorkChain pk {node.pk}")
    return node


def _run_loops(spec: dict, file, cache: bool) -> dict[str, list]:
    """Every (seed, strategy) loop of ``spec`` in this interpreter, printing each round; the nodes by strategy."""
    from aiida_reactmlip.specs.loop import loop_builder, loop_datasets

    if "evidence" in spec:
        return _run_evidence(spec, file, cache)
    try:
        datasets = loop_datasets(spec)
    except (ValueError, KeyError, ImportError, OSError) as exception:
        raise click.ClickException(f"{file}: {exception}") from exception
    described = ", ".join(f"{key} pk {node.pk} ({node.n_frames} frames)" for key, node in datasets.items())
    click.echo(f"datasets: {described}")
    nodes: dict[str, list] = {strategy: [] for strategy in spec["strategies"]}
    with _caching(cache):
        for seed in spec["seeds"]:
            for strategy in spec["strategies"]:
                extras = {"loop_spec": spec["name"]}
                if spec.get("target_force_mae") is not None:  # scores the comparison, also with run_to_budget
                    extras[TARGET_EXTRA] = float(spec["target_force_mae"])
                if strategy == "random" and strategy != spec["strategy"]:
                    extras[BASELINE_EXTRA] = nodes[spec["strategy"]][-1].uuid
                builder = loop_builder(spec, seed, strategy=strategy, datasets=datasets)
                nodes[strategy].append(_run_one_loop(builder, f"[{strategy}, seed {seed}]", extras))
    return nodes


def _run_evidence(spec: dict, file, cache: bool) -> dict[str, list]:
    """Every run of an evidence protocol in this interpreter: per split its datasets, per run every strategy with
    the run's selection and fine-tune seeds; the nodes by strategy, in the plan's order (paired by index)."""
    from aiida_reactmlip.specs.loop import evidence_datasets, loop_builder

    nodes: dict[str, list] = {strategy: [] for strategy in spec["strategies"]}
    datasets_by_split = {}
    with _caching(cache):
        for run in spec["plan"]["runs"]:
            split = spec["plan"]["splits"][run["split"]]
            if run["split"] not in datasets_by_split:
                try:
                    datasets = evidence_datasets(spec, split["seed"])
                except (ValueError, KeyError, ImportError, OSError) as exception:
                    raise click.ClickException(f"{file}: {exception}") from exception
                datasets_by_split[run["split"]] = datasets
                click.echo(f"split {run['split']} (seed {split['seed']}): " + ", ".join(
                    f"{key} pk {node.pk} ({node.n_frames} frames)" for key, node in datasets.items()))
            for strategy in spec["strategies"]:
                builder = loop_builder(spec, run["selection_seed"], strategy=strategy,
                                       datasets=datasets_by_split[run["split"]], finetune_seed=run["finetune_seed"])
                builder.metadata.label = (f"loop {spec['name']} {strategy} split {run['split']} run {run['run']}")
                header = (f"[{strategy}, split {run['split']}, run {run['run']}: selection seed "
                          f"{run['selection_seed']}, fine-tune seed {run['finetune_seed']}]")
                extras = {"loop_spec": spec["name"], "evidence_split": run["split"], "evidence_run": run["run"]}
                nodes[strategy].append(_run_one_loop(builder, header, extras))
    return nodes


def evidence_censor(spec: dict, pool_size: int) -> tuple[int, str]:
    """The label count a protocol run that never reaches the target is counted at, and why: one round past the
    budget (``max_dft_labels + k``: all that is known is that it needs more) when the file sets a budget below
    the pool, else the pool size."""
    budget = spec.get("max_dft_labels")
    if budget is not None and int(budget) + int(spec.get("k", 1)) <= pool_size:
        return int(budget) + int(spec.get("k", 1)), "one round past the budget"
    return int(pool_size), "the pool size"


def evidence_verdict_lines(summaries: dict[str, list[dict]], spec: dict, censor_at: int,
                           censored_at: str = "the pool size") -> list[str]:
    """The protocol's verdicts as lines: the file's strategy against each baseline on the test-set target, paired
    by run (labels to target, and mean error over the common budget), then the mean reactive errors on the test
    set where every run has them (``test_<reactive metric>`` curves of the loop summaries), as measured.

    ``summaries``: strategy -> the loops' summary dicts, run ``i`` of every strategy paired; ``censor_at``: the
    label count a run that never reaches the target is counted at (``censored_at`` says what it is:
    :func:`evidence_censor`)."""
    from aiida_reactmlip.metrics.learning_curves import CURVE_METRICS, REACTIVE_METRICS
    from aiida_reactmlip.metrics.statistics import compare_mean_errors, compare_strategies
    from aiida_reactmlip.specs.evidence import TARGET_METRICS, runs_phrase

    target = spec["evidence"]["target"]
    key = {"force_mae": "test_force_mae", "energy_mae": "test_energy_mae_per_atom"}[target["metric"]]
    if len(summaries) < 2:
        return ["one strategy only: no comparison"]
    curves = {name: [(s["n_labels"], s[key]) for s in group] for name, group in summaries.items()}
    comparisons = compare_strategies(curves, spec["strategy"], float(target["threshold"]), censor_at=censor_at,
                                     unit=TARGET_METRICS[target["metric"]])
    plan = spec.get("plan") or {}
    partial = plan.get("partial")
    lines = [""]
    if partial:
        lines.append(f"PARTIAL protocol: {partial['splits'][0]} of {partial['splits'][1]} splits, {partial['runs'][0]} "
                     f"of {partial['runs'][1]} runs {runs_phrase(plan)}; the verdicts below are those of these runs "
                     "only")
    lines += [(f"evidence, test set, target {target['metric']} <= {target['threshold']:g} "
              f"{TARGET_METRICS[target['metric']]} (runs never reaching it counted at {censored_at}, {censor_at}):")]
    for other, result in comparisons.items():
        lines += [f"  vs {other}: {result['labels_sentence']}", f"  vs {other}: {result['mean_error_sentence']}"]
    for name in REACTIVE_METRICS:
        if not all(f"test_{name}" in s for group in summaries.values() for s in group):
            continue
        reactive = {strategy: [(s["n_labels"], s[f"test_{name}"]) for s in group]
                    for strategy, group in summaries.items()}
        for other, result in compare_mean_errors(reactive, spec["strategy"], unit="eV",
                                                 what=f"mean {CURVE_METRICS[name][0]}").items():
            lines.append(f"  vs {other}: {result['mean_error_sentence']}")
    return lines


def print_evidence_verdicts(nodes: dict[str, list], spec: dict, echo) -> None:
    """:func:`evidence_verdict_lines` of the loops ``nodes`` (strategy -> ActiveLearningWorkChain nodes)."""
    summaries = {strategy: [node.outputs.summary.get_dict() for node in group] for strategy, group in nodes.items()}
    pool_size = max(node.inputs.label_pool.n_frames for group in nodes.values() for node in group)
    for line in evidence_verdict_lines(summaries, spec, *evidence_censor(spec, pool_size)):
        echo(line)


def print_final_table(nodes: dict[str, list], spec: dict, echo) -> None:
    """Error against DFT labels for every strategy and seed, and the labels each needed to reach the target."""
    from aiida_reactmlip.metrics.loop import compare_to_random, labels_to_target

    target = spec.get("target_force_mae")
    barrier = spec.get("target_barrier_error")
    echo("")
    echo(f"{'strategy':<14}{'seed':>5}{'pk':>7}  {'DFT labels -> force MAE (eV/Å)':<58}"
         f"{'barrier ok' if barrier else 'to target':>10}")
    curves: dict[str, list] = {}
    converged: dict[str, list] = {}
    for strategy, group in nodes.items():
        for node in group:
            summary = node.outputs.summary.get_dict()
            points = "  ".join(f"{n}:{e:.3f}" for n, e in zip(summary["n_labels"], summary["force_mae"]))
            if barrier:  # the barrier loop: the DFT labels used when the saddle check passed
                reached = summary["n_labels"][-1] if summary["stop_reason"] == "barrier" else None
            else:
                reached = labels_to_target(summary["n_labels"], summary["force_mae"], target) if target else None
            to_target = "-" if not (target or barrier) else ("not reached" if reached is None else str(reached))
            echo(f"{strategy:<14}{summary['seed']:>5}{node.pk:>7}  {points:<58}{to_target:>10}")
            curves.setdefault(strategy, []).append((summary["n_labels"], summary["force_mae"]))
            converged.setdefault(strategy, []).append(reached)
    if barrier:
        _print_barrier_verdict(converged, spec, echo)
        return
    if target and "random" in curves and spec["strategy"] in curves and spec["strategy"] != "random":
        pairs = min(len(curves["random"]), len(curves[spec["strategy"]]))
        try:
            result = compare_to_random(curves[spec["strategy"]][:pairs], curves["random"][:pairs], target)
        except ValueError as exception:
            echo(f"no comparison: {exception}")
            return
        echo(f"target {target:g} eV/Å: {result['verdict']}")
        echo(f"mean force MAE over the budget: {spec['strategy']} {result['loop_auc']:.4f}, "
             f"random {result['random_auc']:.4f} eV/Å")


def _print_barrier_verdict(converged: dict[str, list], spec: dict, echo) -> None:
    """Barrier loops: the DFT labels each strategy needed, paired by seed with the random baseline."""
    from aiida_reactmlip.metrics.statistics import paired_comparison, verdict

    strategy = spec["strategy"]
    if strategy == "random" or "random" not in converged or strategy not in converged:
        return
    pairs = min(len(converged["random"]), len(converged[strategy]))
    budget = spec.get("max_dft_labels")
    if budget is None and None in converged["random"][:pairs] + converged[strategy][:pairs]:
        echo("no comparison: a loop did not converge and the file sets no max_dft_labels to count it at")
        return
    result = paired_comparison(converged[strategy][:pairs], converged["random"][:pairs],
                               censor_at=None if budget is None else budget + 1, names=(strategy, "random"))
    echo(f"barrier within {spec['target_barrier_error']:g} eV: {verdict(result, 'labels')}")


@cmd_loop.command("show")
@click.argument("pk")
@with_profile
def cmd_loop_show(pk):
    """Round by round: DFT labels used, current error, time. Works while the loop runs.

    Example: reactmlip loop show 1234
    """
    from aiida_reactmlip.workflows.active_learning import PROGRESS_EXTRA

    node = load_loop_node(pk)
    rows = node.base.extras.get(PROGRESS_EXTRA, [])
    state = node.process_state.value if node.process_state else "unknown"
    inputs = node.inputs
    stops = []
    for key, unit in (("target_force_mae", " eV/Å"), ("target_energy_mae", " eV/atom"), ("target_barrier_error", " eV"),
                      ("max_dft_labels", ""), ("max_rounds", "")):
        if key in inputs:
            stops.append(f"{key} {inputs[key].value}{unit}")
    click.echo(f"ActiveLearningWorkChain<{node.pk}> {state}"
               + (f" [{node.exit_status}] {node.exit_message or ''}" if node.is_terminated else "")
               + f"; strategy {inputs.strategy.value}, k {inputs.k.value}, seed {inputs.seed.value}, "
               f"{'oracle pool pk ' + str(inputs.label_pool.pk) if 'label_pool' in inputs else 'exploration'}; "
               f"stop at {', '.join(stops)}")
    click.echo(f"{'round':>5} {'strategy':<14}{'labels':>7}{'new':>5}{'force MAE':>11}{'energy MAE':>12}"
               f"{'time (s)':>10}  finished")
    for row in rows:
        force = row.get("force_mae")
        energy = row.get("energy_mae_per_atom")
        force_text = "-" if force is None else format(force, ".4f")
        energy_text = "-" if energy is None else format(energy, ".5f")
        click.echo(f"{row['round']:>5} {row.get('strategy')!s:<14}{row['n_labels']:>7}{row.get('n_new', 0):>5}"
                   f"{force_text:>11}{energy_text:>12}"
                   f"{row.get('seconds', 0):>10.1f}  {row.get('finished_at', '')}")
    if not rows:
        click.echo("  no round finished yet")
    if "summary" in node.outputs:
        click.echo(f"stopped: {node.outputs.summary['stop_reason']}")
    click.echo("units: force MAE eV/Å, energy MAE eV/atom, on the validation set pk "
               f"{inputs.validation.pk} ({inputs.validation.n_frames} frames)")


def load_loop_node(pk):
    """The ActiveLearningWorkChain node of ``pk`` (pk or UUID), or a ClickException saying what it is."""
    node = load_node_or_fail(pk)
    if getattr(node, "process_type", None) != LOOP_PROCESS_TYPE:
        raise click.ClickException(f"node {pk} is not a reactmlip.active_learning WorkChain ({node.__class__.__name__})")
    return node


def find_baselines(node) -> list:
    """Random-baseline loops recorded for ``node`` by ``reactmlip loop run`` (extra ``loop_baseline_for``)."""
    from aiida import orm

    query = orm.QueryBuilder().append(orm.WorkChainNode, filters={f"extras.{BASELINE_EXTRA}": node.uuid})
    return [n for n in query.all(flat=True) if n.is_finished_ok]


def write_loop_report_for(node, output) -> dict:
    """The report of a finished loop ``node`` and its recorded random baseline (``reactmlip report PK``)."""
    from aiida_reactmlip.report.loop_report import write_loop_report

    if not node.is_finished_ok:
        raise click.ClickException(f"ActiveLearningWorkChain<{node.pk}> did not finish ok: "
                                   f"[{node.exit_status}] {node.exit_message}")
    return write_loop_report(node, pathlib.Path(output or f"results/report-{node.pk}"), baselines=find_baselines(node),
                             target=node.base.extras.get(TARGET_EXTRA, None))


def echo_loop_report(node, output) -> None:
    """``reactmlip report PK`` for a loop node: write the report (with its recorded baseline), list the files."""
    for name, path in write_loop_report_for(node, output).items():
        click.echo(f"{name}: {path.resolve()}")


@cmd_loop.command("report")
@click.argument("pks", nargs=-1, required=True)
@click.option("--baseline", "baseline_pks", multiple=True, help="A random-selection loop to compare with (repeat).")
@click.option("--target", type=float, default=None, help="Force MAE target (eV/Å) for the comparison.")
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Folder to write (default: results/report-PK).")
@with_profile
def cmd_loop_report(pks, baseline_pks, target, output):
    """Plots and HTML page of finished loop(s) PKS (one per seed) against their random baselines.

    Without --baseline, the baselines `reactmlip loop run` recorded for the first loop are used.

    Example: reactmlip loop report 1200 1300 --baseline 1250 --baseline 1350 --target 0.1
    """
    from aiida_reactmlip.report.loop_report import write_loop_report

    nodes = [load_loop_node(pk) for pk in pks]
    baselines = [load_loop_node(pk) for pk in baseline_pks] if baseline_pks else find_baselines(nodes[0])
    for node in [*nodes, *baselines]:
        if not node.is_finished_ok:
            raise click.ClickException(f"ActiveLearningWorkChain<{node.pk}> did not finish ok: "
                                       f"[{node.exit_status}] {node.exit_message}")
    if target is None:
        target = nodes[0].base.extras.get(TARGET_EXTRA, None)
    files = write_loop_report(nodes, pathlib.Path(output or f"results/report-{nodes[0].pk}"), baselines=baselines,
                              target=target)
    for name, path in files.items():
        click.echo(f"{name}: {path.resolve()}")
