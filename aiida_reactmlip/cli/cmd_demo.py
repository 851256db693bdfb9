"""``reactmlip demo``: the main job end to end (H2 bond scan, pw.x labels, CHGNet and SevenNet-0 zero-shot)."""

from __future__ import annotations

import pathlib
import time

import click

from .root import cmd_root, load_profile_or_fail
from .run_file import check_finished, make_console

DEFAULT_MODELS = "chgnet-0.3.0,sevennet-0"


def run_zero_shot_benchmark(system_name: str, model_names: list[str], protocol: str, pw_processes: int = 1):
    """Run the zero-shot benchmark of one library system in-process; return the WorkChain node."""
    from aiida_reactmlip.specs.campaign import CampaignSpec, SystemRequest, run_campaign

    spec = CampaignSpec(name=system_name, systems=[SystemRequest(system_name)], models=model_names,
                        protocol=protocol, pw_processes=pw_processes,
                        description=f"zero-shot benchmark of {', '.join(model_names)} on {system_name}")
    return run_campaign(spec)


def write_demo_results(node, output: pathlib.Path) -> dict[str, pathlib.Path]:
    """Write the benchmark report (leaderboard, dataset, plots, HTML page); return the paths."""
    from aiida_reactmlip.report.benchmark_report import write_benchmark_report

    return write_benchmark_report(node, output)


def print_leaderboard(node, console) -> None:
    from rich.table import Table

    from aiida_reactmlip.report.tables import format_rows, headers

    rows = node.outputs.leaderboard["rows"]
    table = Table(title=f"Zero-shot error against pw.x ({node.label})")
    for header in headers(rows):
        table.add_column(header, justify="right")
    table.add_column("metrics pk", justify="right")
    from aiida import orm

    for row, cells in zip(rows, format_rows(rows)):
        table.add_row(*cells, str(orm.load_node(row["metrics_uuid"]).pk))
    console.print(table)
    if rows:
        console.print(f"energies: {rows[0]['energy_reference']}; forces compared component by component.")


@cmd_root.command("demo")
@click.option("--system", "system_name", default="h2-dissociation", show_default=True,
              help="Reactive system from the library (see `reactmlip systems list`).")
@click.option("--models", "model_names", default=DEFAULT_MODELS, show_default=True,
              help="Comma-separated registry models to benchmark zero-shot.")
@click.option("--protocol", default="fast", show_default=True, type=click.Choice(["fast", "moderate", "precise"]),
              help="DFT labelling protocol.")
@click.option("--output", type=click.Path(file_okay=False), default="results/demo", show_default=True,
              help="Folder for the leaderboard, dataset and plots.")
@click.pass_context
def cmd_demo(ctx, system_name, model_names, protocol, output):
    """Run the main job end to end and print the error table.

    An H2 bond-length scan (7 configurations) is labelled with pw.x, CHGNet 0.3.0 and SevenNet-0
    predict it zero-shot, and their errors against DFT are printed: energies as relative energies
    along the scan (the MLIPs were trained on VASP data, so absolute totals are not comparable),
    forces directly. Every number is a node in the provenance graph: follow the PKs printed with
    `verdi process show PK` and `verdi node show PK`.

    Example: reactmlip demo --protocol fast --models chgnet-0.3.0,sevennet-0
    """
    console = make_console()  # piped or under make: the table is not squeezed into 80 columns
    profile = load_profile_or_fail(ctx)
    start = time.perf_counter()
    names = [name.strip() for name in model_names.split(",") if name.strip()]
    console.print(f"[bold]reactmlip demo[/bold] on profile {profile.name}: {system_name}, models {', '.join(names)}, "
                  f"protocol {protocol}")
    from .console import QuietConsole
    from .interrupts import InterruptGuard

    quiet = QuietConsole("demo", console)
    echo = lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    with InterruptGuard(echo), quiet:  # Ctrl-C stops pw.x; reports and warnings go to the log file
        node = run_zero_shot_benchmark(system_name, names, protocol)
    console.print(quiet.summary(), markup=False, highlight=False)
    check_finished(node)
    print_leaderboard(node, console)
    paths = write_demo_results(node, pathlib.Path(output))
    console.print(f"\nBenchmarkWorkChain pk {node.pk}  (verdi process show {node.pk}; verdi process list -a)")
    console.print(f"dataset pk {node.outputs.dataset.pk}; "
                  + "; ".join(f"metrics {key} pk {m.pk}" for key, m in node.outputs.metrics.items()))
    for name, path in paths.items():
        console.print(f"  {name}: {path.resolve()}")
    console.print(f"wall time {time.perf_counter() - start:.1f} s")
