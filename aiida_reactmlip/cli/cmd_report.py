"""``reactmlip report PK``: plots, tables and an HTML page for a finished benchmark."""

from __future__ import annotations

import click

from .root import cmd_root, with_profile


@cmd_root.command("report")
@click.argument("pk")
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Folder to write (default: results/report-PK).")
@with_profile
def cmd_report(pk, output):
    """Write the report of a finished reactmlip.benchmark, finetune_study or active_learning WorkChain.

    \b
    The folder gets: leaderboard.md and leaderboard.csv, dataset.extxyz (the DFT labels),
    energy_profile_*.png (relative energy along each scan or path, DFT against each model),
    energy_parity.png, force_parity.png, and index.html showing all of them.

    For a fine-tuning study: learning_curve.md/.csv, learning_curves.png, forgetting.png,
    training_history.png, test_set.extxyz and index.html. For an active-learning loop (with the
    random baseline it recorded): error_vs_labels.png, selected_per_round.png, rounds.csv, index.html.

    Example: reactmlip report 103 --output results/h2-report
    """
    import pathlib

    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from aiida_reactmlip.report.benchmark_report import write_benchmark_report

    try:
        node = orm.load_node(pk)
    except NotExistent as exception:
        raise click.ClickException(f"no node with pk/uuid {pk}") from exception
    if getattr(node, "process_type", None) == "aiida.workflows:reactmlip.finetune_study":
        from aiida_reactmlip.report.finetune_report import write_finetune_report

        if not node.is_finished_ok:
            raise click.ClickException(
                f"FinetuneStudyWorkChain<{node.pk}> did not finish ok: [{node.exit_status}] {node.exit_message}")
        for name, path in write_finetune_report(node, pathlib.Path(output or f"results/report-{node.pk}")).items():
            click.echo(f"{name}: {path.resolve()}")
        return
    if getattr(node, "process_type", None) == "aiida.workflows:reactmlip.active_learning":
        from .cmd_loop import echo_loop_report

        if not node.is_finished_ok:
            raise click.ClickException(
                f"ActiveLearningWorkChain<{node.pk}> did not finish ok: [{node.exit_status}] {node.exit_message}")
        echo_loop_report(node, output)
        return
    if getattr(node, "process_type", None) != "aiida.workflows:reactmlip.benchmark":
        raise click.ClickException(f"node {pk} is not a reactmlip.benchmark WorkChain ({node.__class__.__name__})")
    if not node.is_finished_ok:
        raise click.ClickException(f"BenchmarkWorkChain<{node.pk}> did not finish ok: [{node.exit_status}] {node.exit_message}")
    files = write_benchmark_report(node, pathlib.Path(output or f"results/report-{node.pk}"))
    for name, path in files.items():
        click.echo(f"{name}: {path.resolve()}")
