"""``reactmlip label``: DFT labels (pw.x) for the structures of a file or an AiiDA group, with live progress."""

from __future__ import annotations

import pathlib
import time

import click

from .root import cmd_root, with_profile

PW_PROCESS_TYPE = "aiida.workflows:quantumespresso.pw.base"


def load_structures(source: str) -> tuple[dict, str]:
    """Structures to label from a file ASE reads (every frame) or an AiiDA group of StructureData.

    :returns: (name -> StructureData, description of the source)
    :raises click.ClickException: neither a readable file nor a group, or nothing to label in it.
    """
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from aiida_reactmlip.workflows.label import structures_from_atoms, structures_from_group

    path = pathlib.Path(source)
    if path.is_file():
        import ase.io

        try:
            images = ase.io.read(path, index=":")
        except Exception as exception:
            raise click.ClickException(f"ASE cannot read {path}: {exception}") from exception
        if not images:
            raise click.ClickException(f"{path} holds no structures")
        names = [str(a.info.get("name", f"{path.stem}_{i:04d}")) for i, a in enumerate(images)]
        for atoms, name in zip(images, names):
            atoms.info.setdefault("origin", path.name)
            atoms.info.setdefault("name", name)
        return structures_from_atoms(images, names), f"{len(images)} structure(s) from {path}"
    try:
        group = orm.load_group(source)
    except (NotExistent, MultipleObjectsError, ValueError) as exception:
        raise click.ClickException(
            f"{source!r} is neither a file nor an AiiDA group (`verdi group list` shows the groups)"
        ) from exception
    try:
        structures = structures_from_group(group)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception
    return structures, f"{len(structures)} StructureData from group {group.label!r}"


def label_progress(workchain, total: int) -> dict[str, int]:
    """Counts of the pw.x labelling jobs of ``workchain``: done, failed, running, waiting (not yet submitted)."""
    from aiida.common.links import LinkType

    done = failed = running = 0
    for link in workchain.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all():
        node = link.node
        if node.process_type != PW_PROCESS_TYPE:
            continue
        if node.is_finished_ok:
            done += 1
        elif node.is_terminated:
            failed += 1
        else:
            running += 1
    return {"done": done, "failed": failed, "running": running, "waiting": max(total - done - failed - running, 0)}


class ProgressDisplay:
    """A rich progress bar: labels done (and failed) out of the total, with running/waiting counts."""

    def __init__(self, total: int, console=None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.total = total
        self.progress = Progress(
            TextColumn("[bold]pw.x labels"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("label", total=total, status="starting")
        self.last: dict[str, int] | None = None

    def update(self, counts: dict[str, int]) -> None:
        status = (f"[green]{counts['done']} done[/] [red]{counts['failed']} failed[/] "
                  f"[yellow]{counts['running']} running[/] {counts['waiting']} waiting")
        self.progress.update(self.task, completed=counts["done"] + counts["failed"], status=status)
        self.last = counts

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *args):
        self.progress.stop()


def run_with_progress(builder, display: ProgressDisplay, interval: float = 1.0):
    """Run ``builder`` in this interpreter (no daemon needed) while ``display`` follows its pw.x jobs."""
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    runner = get_manager().get_runner()
    process = instantiate_process(runner, builder)
    node = process.node
    total = len(builder.structures)

    def tick():
        display.update(label_progress(node, total))
        if not node.is_terminated:
            runner.loop.call_later(interval, tick)

    runner.loop.call_soon(tick)
    process.execute()
    display.update(label_progress(node, total))
    return node


def watch_submitted(node, display: ProgressDisplay, interval: float = 2.0):
    """Follow a LabelWorkChain that the daemon runs until it terminates."""
    total = len(node.base.links.get_incoming(link_label_filter="structures__%").all()) or display.total
    while not node.is_terminated:
        display.update(label_progress(node, total))
        time.sleep(interval)
    display.update(label_progress(node, total))
    return node


@cmd_root.command("label")
@click.argument("source", metavar="GROUP_OR_FILE")
@click.option("--protocol", type=click.Choice(["fast", "moderate", "precise"]), default="moderate", show_default=True,
              help="Labelling protocol (cutoffs, k-points, SCF threshold; see docs/labelling.md).")
@click.option("--pseudo-family", default=None, help="aiida-pseudo family label [default: reactmlip/debian-pbe].")
@click.option("--code", "code_label", default=None, help="pw.x code, e.g. pw@localhost [default: pw@localhost].")
@click.option("--mpiprocs", type=int, default=1, show_default=True,
              help="MPI processes per pw.x job (1: serial pw.x without mpirun).")
@click.option("--max-iterations", type=int, default=3, show_default=True,
              help="Restarts PwBaseWorkChain may try per configuration before the label is given up.")
@click.option("--dipole-correction", is_flag=True, help="Dipole correction along c for every slab.")
@click.option("--cache/--no-cache", default=True, show_default=True,
              help="Reuse earlier pw.x calculations with identical inputs (AiiDA caching) in this interpreter.")
@click.option("--daemon", is_flag=True,
              help="Submit to the AiiDA daemon (profile with a broker) and follow it, instead of running here.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Also write the labelled dataset as extended XYZ (energies eV, forces eV/Å).")
@click.option("--group", "group_label", default=None, help="Add the dataset node to this group (created if missing).")
@with_profile
def cmd_label(source, protocol, pseudo_family, code_label, mpiprocs, max_iterations, dipole_correction, cache,
              daemon, output, group_label):
    """Label the structures of GROUP_OR_FILE with DFT (pw.x scf, forces; stress for bulk).

    GROUP_OR_FILE is a file that ASE reads (extxyz, CIF, POSCAR, ...; every frame is labelled, its
    scalar info such as `multiplicity` kept) or an AiiDA group of StructureData. A progress bar shows
    the jobs done, failed, running and waiting. Prints the dataset node; configurations whose DFT
    failed are listed with their exit status and the dataset of the others is still made (exit 401).

    \b
    Examples:
      reactmlip label h2_scan.extxyz --protocol fast -o h2_labels.extxyz
      reactmlip label my-structures-group --protocol moderate --mpiprocs 2
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida.manage.caching import enable_caching
    from rich.console import Console

    from aiida_reactmlip import provision
    from aiida_reactmlip.workflows.label import LabelWorkChain

    console = Console()
    structures, description = load_structures(source)
    try:
        code = orm.load_code(code_label or f"{provision.PW_CODE_LABEL}@{provision.DEFAULT_COMPUTER}")
    except NotExistent as exception:
        raise click.ClickException(f"pw.x code {code_label or 'pw@localhost'} not found; run `reactmlip setup`") from exception
    builder = LabelWorkChain.get_builder()
    builder.structures = structures
    builder.pw_code = code
    builder.pseudo_family = orm.Str(pseudo_family or provision.DEBIAN_FAMILY_LABEL)
    builder.protocol = orm.Str(protocol)
    builder.max_iterations = orm.Int(max_iterations)
    builder.dipole_correction = orm.Bool(dipole_correction)
    options = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": mpiprocs}}
    if mpiprocs == 1:
        options["withmpi"] = False
    builder.options = orm.Dict(options)
    console.print(f"labelling {description} with pw.x, protocol {protocol}")

    try:
        with ProgressDisplay(len(structures), console=console) as display:
            if daemon:
                from aiida.engine import submit

                node = submit(builder)
                console.print(f"submitted LabelWorkChain<{node.pk}> to the daemon")
                watch_submitted(node, display)
            elif cache:
                with enable_caching(identifier="aiida.calculations:quantumespresso.pw"):
                    node = run_with_progress(builder, display)
            else:
                node = run_with_progress(builder, display)
    except ValueError as exception:  # input validation: nothing was submitted
        raise click.ClickException(str(exception)) from exception

    counts = display.last or {}
    cached = sum(
        1 for n in node.called_descendants
        if n.process_type == "aiida.calculations:quantumespresso.pw" and n.base.caching.is_created_from_cache
    )
    console.print(f"LabelWorkChain<{node.pk}> {node.process_state.value}, exit status {node.exit_status}; "
                  f"{counts.get('done', 0)} labelled ({cached} from cache), {counts.get('failed', 0)} failed")
    if "failures" in node.outputs:
        for name, failure in sorted(node.outputs.failures.get_dict().items()):
            console.print(f"  [red]failed[/] {name}: PwBaseWorkChain<{failure['pk']}> exit {failure['exit_status']}"
                          f" {failure['exit_message']}")
    if "dataset" not in node.outputs:
        raise click.ClickException(f"no dataset: {node.exit_message or 'the work chain did not finish'}")
    dataset = node.outputs.dataset
    console.print(f"dataset: LabelledDatasetData<{dataset.pk}> with {dataset.n_frames} frame(s)")
    if output:
        dataset.export_extxyz(output)
        console.print(f"wrote {output}")
    if group_label:
        group, _ = orm.Group.collection.get_or_create(label=group_label)
        group.add_nodes([dataset])
        console.print(f"added to group {group_label!r}")
    if node.exit_status not in (0, None):
        raise SystemExit(1)
