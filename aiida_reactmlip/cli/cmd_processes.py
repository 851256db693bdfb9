"""``reactmlip processes clean``: process nodes left Waiting/Running by an in-process run that is gone."""

from __future__ import annotations

import click

from .root import cmd_root, with_profile


@cmd_root.group("processes")
def cmd_processes():
    """Process nodes of the profile that no runner will continue."""


@cmd_processes.command("clean")
@click.option(
    "--yes", is_flag=True, help="Stop their jobs and mark them killed (without it: only list them)."
)
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="With --yes: first let orphan jobs still running finish, up to SECONDS, so that their pw.x "
    "output is kept; jobs still running after that are stopped.",
)
@with_profile
def cmd_clean(yes, wait_s):
    """List (and with --yes, end) process nodes left unfinished by an in-process run that is gone.

    On a profile without a broker (the default: SQLite, processes run inside the `reactmlip` or `verdi run`
    command) a run killed hard (SIGKILL, power loss, a closed terminal) leaves its process nodes Waiting or
    Running for good, and `verdi process kill` cannot reach them: it needs a broker. This command finds the
    nodes whose runner is gone (the process recorded as their owner no longer runs; nodes without an owner
    record when no other process has the profile's storage open). With --yes it stops the jobs still running
    in their folders
    (pw.x left as orphans), marks the nodes killed, and imports every pw.x that finished meanwhile so that the
    next `reactmlip label` reuses it instead of running it again.

    \b
    Examples:
      reactmlip processes clean          # list
      reactmlip processes clean --yes    # stop orphan jobs, mark the nodes killed, keep finished pw.x
      reactmlip processes clean --yes --wait 600   # let running orphan pw.x finish first (10 min at most)
    """
    import time

    from aiida_reactmlip.cli.interrupts import job_running, stale_processes, stop_and_mark
    from aiida_reactmlip.cli.root import load_profile_or_fail
    from aiida_reactmlip.cli.salvage import salvage_finished_pw

    profile = load_profile_or_fail()
    if profile.process_control_backend:
        raise click.ClickException(
            f"profile {profile.name!r} has a broker ({profile.process_control_backend}): its daemon owns the "
            "processes; use `verdi process list` and `verdi process kill PK` there"
        )
    stale = stale_processes()
    if not stale:
        click.echo(f"no unfinished process node without a runner in profile {profile.name!r}")
        return
    click.echo(
        f"{len(stale)} process node(s) in profile {profile.name!r} are unfinished and nothing runs them "
        "(no broker: `verdi process kill` cannot reach them):"
    )
    for node, why in stale:
        job = ""
        if hasattr(node, "get_job_id") and node.get_job_id():
            running = job_running(node)
            job = f", job {node.get_job_id()}" + (
                " still running" if running else "" if running is False else " (state unknown)"
            )
        click.echo(f"  {node.process_label}<{node.pk}> {node.process_state.value}{job}: {why}")
    if not yes:
        click.echo("rerun with --yes to stop their jobs and mark them killed")
        return
    deadline = time.monotonic() + wait_s
    while wait_s > 0 and time.monotonic() < deadline and any(job_running(node) for node, _ in stale):
        time.sleep(2.0)
    stopped, marked = stop_and_mark(
        [node for node, _ in stale], "killed by `reactmlip processes clean`: the run that owned it was gone"
    )
    click.echo(
        f"stopped {len(stopped)} job(s){': ' + ', '.join(stopped) if stopped else ''}; "
        f"marked {len(marked)} process node(s) killed"
    )
    salvaged = salvage_finished_pw(click.echo)
    reusable = sum(1 for _, new in salvaged["imported"] if new.is_finished_ok)
    if reusable:
        click.echo(
            f"{reusable} finished pw.x run(s) kept: `reactmlip label` reuses them (caching) instead of "
            "running them again"
        )
