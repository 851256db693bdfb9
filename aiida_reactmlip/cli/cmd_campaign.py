"""``reactmlip campaign``: run a study described in ``workchains/*.yaml``."""

from __future__ import annotations

import pathlib
import time

import click

from .root import cmd_root, load_profile_or_fail


@cmd_root.group("campaign")
def cmd_campaign():
    """Studies described in YAML: systems x models x protocol."""


@cmd_campaign.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Folder for the report (default: results/<campaign name>).")
@click.option("--dry-run", is_flag=True, help="Only show what would be labelled and evaluated.")
@click.pass_context
def cmd_campaign_run(ctx, file, output, dry_run):
    """Label the campaign's configurations with pw.x, evaluate its models, print the leaderboard.

    \b
    Examples:
      reactmlip campaign run workchains/h2-dissociation.yaml
      reactmlip campaign run workchains/h-on-cu111.yaml --dry-run
    """
    from rich.console import Console

    from aiida_reactmlip.workflows.campaign import campaign_configurations, load_campaign, run_campaign

    from .cmd_demo import print_leaderboard, write_demo_results

    console = Console()
    if not console.is_terminal:
        console = Console(width=130)
    try:
        spec = load_campaign(file)
    except (ValueError, KeyError) as exception:
        raise click.ClickException(str(exception)) from exception
    configurations = campaign_configurations(spec)
    elements = sorted({s for atoms in configurations for s in atoms.get_chemical_symbols()})
    console.print(f"[bold]campaign {spec.name}[/bold] ({spec.category}): {len(configurations)} configurations "
                  f"({', '.join(elements)}), models {', '.join(spec.models)}, protocol {spec.protocol}")
    if dry_run:
        for atoms in configurations:
            console.print(f"  {atoms.info.get('system')}: {atoms.info.get('name')} ({atoms.info.get('role')}, "
                          f"{len(atoms)} atoms)")
        return
    profile = load_profile_or_fail(ctx)
    console.print(f"profile {profile.name}")
    start = time.perf_counter()
    node = run_campaign(spec)
    if not node.is_finished_ok:
        raise click.ClickException(
            f"BenchmarkWorkChain<{node.pk}> failed: [{node.exit_status}] {node.exit_message}. "
            f"Inspect with `verdi process report {node.pk}`."
        )
    print_leaderboard(node, console)
    paths = write_demo_results(node, pathlib.Path(output or f"results/{spec.name}"))
    console.print(f"\nBenchmarkWorkChain pk {node.pk}; dataset pk {node.outputs.dataset.pk}")
    console.print(f"report: {paths['index.html'].resolve()}")
    console.print(f"wall time {time.perf_counter() - start:.1f} s")
