"""``reactmlip label``: DFT labels (pw.x) for the structures of a file or an AiiDA group, with live progress."""

from __future__ import annotations

import pathlib
import time

import click

from .console import QuietConsole, console_options
from .root import cmd_root, with_profile

PW_PROCESS_TYPE = "aiida.workflows:quantumespresso.pw.base"


def user_frames(images: list, source: str) -> list:
    """The frames of a user's file with the library's info (roles slab, gas, minimum, ... ; see
    :mod:`aiida_reactmlip.user_structures`); its notes echoed, its errors as click errors."""
    from aiida_reactmlip.user_structures import UserStructureError, normalise_frames

    try:
        frames, notes = normalise_frames(images, source)
    except UserStructureError as exception:
        raise click.ClickException(str(exception)) from exception
    for note in notes:
        click.echo(f"note: {note}")
    return frames


def load_structures(source: str) -> tuple[dict, str]:
    """Structures to label from a file ASE reads (every frame) or an AiiDA group of StructureData.

    :returns: (name -> StructureData, description of the source)
    :raises click.ClickException: neither a readable file nor a group, or nothing to label in it.
    """
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from aiida_reactmlip.specs.builders import structures_from_atoms, structures_from_group

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
        images = user_frames(images, path.stem)
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

    from .console import job_states

    calls = workchain.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()
    counts = job_states(link.node for link in calls if link.node.process_type == PW_PROCESS_TYPE)
    return {**counts, "waiting": max(total - sum(counts.values()), 0)}


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
    from aiida.manage import get_manager

    runner = get_manager().get_runner()
    process = runner.instantiate_process(builder)  # through the runner: an InterruptGuard tracks it
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


def spin_plan(structures: dict, mode: str) -> dict:
    """name -> :class:`aiida_reactmlip.spin.SpinChoice` for the structures to label under ``--spin mode``."""
    from aiida_reactmlip.workflows.label import structure_spin

    return {name: structure_spin(structure, mode) for name, structure in sorted(structures.items())}


def spin_results(workchain) -> list[dict]:
    """The spin-polarised pw.x labels of a LabelWorkChain: name, PwBaseWorkChain pk, total and absolute
    magnetisation (Bohr magnetons per cell, pw.x ``output_parameters``), the magnetic atoms (Cr, Mn, Fe, Co, Ni)
    and the total magnetisation per magnetic atom (None without one)."""
    from aiida.common.links import LinkType

    from aiida_reactmlip.qe_settings import MAGNETIC_ELEMENTS

    rows = []
    for link in workchain.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all():
        node = link.node
        if node.process_type != PW_PROCESS_TYPE or not link.link_label.startswith("label_"):
            continue
        if node.inputs.pw.parameters.get_dict().get("SYSTEM", {}).get("nspin", 1) != 2:
            continue
        row = {"name": link.link_label[len("label_"):], "pk": node.pk, "total": None, "absolute": None,
               "magnetic_atoms": sum(1 for site in node.inputs.pw.structure.sites
                                     if node.inputs.pw.structure.get_kind(site.kind_name).symbol in MAGNETIC_ELEMENTS)}
        if "output_parameters" in node.outputs:
            parameters = node.outputs.output_parameters.get_dict()
            row["total"] = parameters.get("total_magnetization")
            row["absolute"] = parameters.get("absolute_magnetization")
        row["per_magnetic_atom"] = (row["total"] / row["magnetic_atoms"]
                                    if row["total"] is not None and row["magnetic_atoms"] else None)
        rows.append(row)
    return sorted(rows, key=lambda r: r["name"])


def print_spin_results(console, rows: list[dict]) -> None:
    """One line per spin-polarised label: total magnetisation per cell and per magnetic atom (μB)."""
    if not rows:
        console.print("spin: every frame ran without spin polarisation")
        return
    console.print(f"spin-polarised: {len(rows)} frame(s)")
    for row in rows:
        if row["total"] is None:
            console.print(f"  {row['name']}: PwBaseWorkChain<{row['pk']}> has no magnetisation (no finished label)")
            continue
        per_atom = (f", {row['per_magnetic_atom']:.2f} μB per magnetic atom ({row['magnetic_atoms']})"
                    if row["per_magnetic_atom"] is not None else "")
        console.print(f"  {row['name']}: total magnetisation {row['total']:.2f} μB/cell "
                      f"(absolute {row['absolute']:.2f}){per_atom}", highlight=False)


def structure_sizes(structures: dict, protocol: str, family_label: str, mpiprocs: int) -> dict[str, dict]:
    """name -> atoms, k-points, ecutwfc (Ry) and MPI ranks of each structure under ``protocol`` (the size guard's
    input, :mod:`aiida_reactmlip.cli.size_guard`); 1 k-point and 30 Ry where the family cannot tell."""
    import numpy as np
    from aiida import orm

    from aiida_reactmlip.qe_settings import load_protocol, pw_choices

    try:
        family, settings = orm.load_group(family_label), load_protocol(protocol)
    except Exception:  # noqa: BLE001  (reported by the work chain's input check)
        family = settings = None
    sizes = {}
    for name, structure in structures.items():
        size = {"atoms": len(structure.sites), "kpoints": 1, "ecutwfc": 30.0, "ranks": mpiprocs}
        if family is not None:
            try:
                cutoffs = family.get_recommended_cutoffs(structure=structure, unit="Ry")
                choices = pw_choices(structure.get_ase(), settings, cutoffs)
                size.update(kpoints=int(np.prod(choices["kpoints_mesh"])), ecutwfc=float(choices["ecutwfc"]))
            except Exception:  # noqa: BLE001  (missing pseudopotential: the work chain's input check says so)
                pass
        sizes[name] = size
    return sizes


@cmd_root.command("label")
@click.argument("source", metavar="GROUP_OR_FILE")
@click.option("--protocol", type=click.Choice(["fast", "moderate", "precise"]), default="moderate", show_default=True,
              help="Labelling protocol (cutoffs, k-points, SCF threshold; see docs/labelling.md).")
@click.option("--pseudo-family", default=None, help="aiida-pseudo family label [default: reactmlip/debian-pbe].")
@click.option("--code", "code_label", default=None, help="pw.x code, e.g. pw@localhost [default: pw@localhost].")
@click.option("--mpiprocs", type=click.IntRange(min=1), default=1, show_default=True,
              help="MPI processes per pw.x job (1: serial pw.x without mpirun).")
@click.option("--max-iterations", type=click.IntRange(min=1), default=3, show_default=True,
              help="Restarts PwBaseWorkChain may try per configuration before the label is given up.")
@click.option("--dipole-correction", is_flag=True, help="Dipole correction along c for every slab.")
@click.option("--spin", "spin_mode", type=click.Choice(["auto", "off", "on"]), default="auto", show_default=True,
              help="auto: spin-polarised for Cr/Mn/Fe/Co/Ni, odd-electron molecules/atoms and O2; on: every "
              "periodic structure; off: none (odd-electron molecules stay doublets). A frame's `multiplicity` "
              "or `spin_polarised` info wins.")
@click.option("--cache/--no-cache", default=True, show_default=True,
              help="Reuse earlier pw.x calculations with identical inputs (AiiDA caching) in this interpreter.")
@click.option("--daemon", is_flag=True,
              help="Submit to the AiiDA daemon (profile with a broker) and follow it, instead of running here.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Also write the labelled dataset as extended XYZ (energies eV, forces eV/Å).")
@click.option("--group", "group_label", default=None, help="Add the dataset node to this group (created if missing).")
@click.option("--max-atoms", type=int, default=None,
              help="Refuse structures with more atoms than this unless --yes [default: $REACTMLIP_MAX_ATOMS or "
              "200; 0: no limit].")
@click.option("--yes", is_flag=True, help="Label structures above --max-atoms anyway.")
@console_options
@with_profile
def cmd_label(source, protocol, pseudo_family, code_label, mpiprocs, max_iterations, dipole_correction, spin_mode,
              cache, daemon, output, group_label, max_atoms, yes, verbose, log_file):
    """Label the structures of GROUP_OR_FILE with DFT (pw.x scf, forces; stress for bulk).

    GROUP_OR_FILE is a file that ASE reads (extxyz, CIF, POSCAR, ...; every frame is labelled, its
    scalar info such as `multiplicity` kept) or an AiiDA group of StructureData. A progress bar shows
    the jobs done, failed, running and waiting. Prints the dataset node; configurations whose DFT
    failed are listed with their exit status and the dataset of the others is still made (exit 401).

    Ctrl-C (or SIGTERM) stops the pw.x jobs it started and marks the unfinished processes killed; run the
    same command again to resume: finished pw.x runs are reused (also one that finished after the stop).
    Structures above --max-atoms are refused unless --yes, with an estimate of their pw.x cost.

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

    from .interrupts import InterruptGuard, stale_processes
    from .salvage import salvage_finished_pw
    from .size_guard import default_max_atoms, size_refusal

    console = Console()
    if output:  # before any pw.x run: a dataset that cannot be written at the end is DFT time lost
        from .cmd_dataset import check_output_file

        check_output_file(output)
    structures, description = load_structures(source)
    refusal = None if yes else size_refusal(
        structure_sizes(structures, protocol, pseudo_family or provision.DEBIAN_FAMILY_LABEL, mpiprocs),
        default_max_atoms() if max_atoms is None else max_atoms)
    if refusal:
        raise click.ClickException(refusal)
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
    builder.spin = orm.Str(spin_mode)
    options = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": mpiprocs}}
    if mpiprocs == 1:
        options["withmpi"] = False
    builder.options = orm.Dict(options)
    console.print(f"labelling {description} with pw.x, protocol {protocol}")
    try:
        plan = spin_plan(structures, spin_mode)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception
    polarised = {name: choice for name, choice in plan.items() if choice.polarised}
    if polarised:
        console.print(f"spin (--spin {spin_mode}): {len(polarised)} of {len(plan)} frame(s) spin-polarised: "
                      + "; ".join(f"{name} ({choice.reason})" for name, choice in list(polarised.items())[:5])
                      + (" ..." if len(polarised) > 5 else ""), highlight=False)

    echo = lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    if not daemon:
        stale = stale_processes()
        if stale:
            console.print(f"note: {len(stale)} process node(s) of an earlier in-process run are unfinished and "
                          "nothing runs them: `reactmlip processes clean` lists them", highlight=False)
        if cache:
            salvage_finished_pw(echo)
    quiet = QuietConsole("label", console, verbose=verbose, log_file=log_file)
    try:
        if daemon:
            with quiet, ProgressDisplay(len(structures), console=console) as display:
                from aiida.engine import submit

                node = submit(builder)
                console.print(f"submitted LabelWorkChain<{node.pk}> to the daemon")
                try:
                    watch_submitted(node, display)
                except KeyboardInterrupt:
                    raise click.ClickException(f"stopped following LabelWorkChain<{node.pk}>: the daemon runs it "
                                               f"on (`verdi process show {node.pk}`)") from None
        else:
            resume = ("rerun the same `reactmlip label` command to resume (finished pw.x runs are reused)" if cache
                      else "rerun the same command with --cache to reuse the finished pw.x runs")
            with InterruptGuard(echo, resume=resume), quiet, \
                    ProgressDisplay(len(structures), console=console) as display:
                if cache:
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
    print_spin_results(console, spin_results(node))
    if "failures" in node.outputs:
        for name, failure in sorted(node.outputs.failures.get_dict().items()):
            console.print(f"  [red]failed[/] {name}: PwBaseWorkChain<{failure['pk']}> exit {failure['exit_status']}"
                          f" {failure['exit_message']}")
    quiet.print_summary()
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
