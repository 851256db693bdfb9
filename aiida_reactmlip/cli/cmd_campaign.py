"""``reactmlip campaign``: run a study described in ``workchains/*.yaml``."""

from __future__ import annotations

import pathlib

import click

from .root import cmd_root
from .run_file import check_finished, console_echo, file_options, make_console, run_file


@cmd_root.group("campaign")
def cmd_campaign():
    """Studies described in YAML: systems x models x protocol."""


@cmd_campaign.command("run")
@file_options("campaign")
@click.pass_context
def cmd_campaign_run(ctx, file, output, dry_run):
    """Label the campaign's configurations with pw.x, evaluate its models, print the leaderboard.

    \b
    Examples:
      reactmlip campaign run workchains/h2-dissociation.yaml
      reactmlip campaign run workchains/h-on-cu111.yaml --dry-run
    """
    from aiida_reactmlip.specs.campaign import campaign_configurations, load_campaign, run_campaign

    from .cmd_demo import print_leaderboard, write_demo_results

    console = make_console()
    echo = console_echo(console)

    def describe(spec):
        configurations = campaign_configurations(spec)
        elements = sorted({s for atoms in configurations for s in atoms.get_chemical_symbols()})
        console.print(f"[bold]campaign {spec.name}[/bold] ({spec.category}): {len(configurations)} configurations "
                      f"({', '.join(elements)}), models {', '.join(spec.models)}, protocol {spec.protocol}")
        if dry_run:
            for atoms in configurations:
                echo(f"  {atoms.info.get('system')}: {atoms.info.get('name')} ({atoms.info.get('role')}, "
                     f"{len(atoms)} atoms)")

    def report(spec, node):
        check_finished(node)
        print_leaderboard(node, console)
        files = write_demo_results(node, pathlib.Path(output or f"results/{spec.name}"))
        echo(f"\nBenchmarkWorkChain pk {node.pk}; dataset pk {node.outputs.dataset.pk}")
        return files

    run_file(ctx, file, dry_run, echo, load=load_campaign, describe=describe, run=run_campaign, report=report)
