"""What every ``reactmlip ... FILE`` command (campaign run, finetune study, loop run) does the same way: the
console, the FILE / --output / --dry-run arguments, reading the file (old keys' warnings echoed, errors as
click errors), the dry run, the profile, running in this interpreter with a periodic progress callback, the
check that a WorkChain finished, the report and the wall time; Ctrl-C or SIGTERM during the run stops its jobs and
marks its unfinished processes killed (:mod:`aiida_reactmlip.cli.interrupts`); and loading a node named on the
command line."""

from __future__ import annotations

import time
import typing as t
import warnings

import click

from .root import load_profile_or_fail


def make_console(width: int = 130):
    """A rich Console: the terminal's width, or ``width`` columns when piped (tables are not squeezed to 80)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=width)


def console_echo(console) -> t.Callable[[str], None]:
    """``console.print`` of plain text (no rich markup: file paths and messages print as they are)."""
    return lambda text="": console.print(text, markup=False, highlight=False)


def _remember(ctx, param, value):
    """Keep a console option in ``ctx.meta`` (read by :func:`run_file`; the command's signature stays as it is)."""
    ctx.meta[f"reactmlip_{param.name}"] = value
    return value


def file_options(kind: str):
    """Decorator adding the FILE argument and the ``--output`` and ``--dry-run`` options of a ``kind`` file, and
    the quiet console's ``-v/--verbose`` and ``--log-file`` (:mod:`aiida_reactmlip.cli.console`)."""

    def decorate(function):
        function = click.option("--log-file", type=click.Path(dir_okay=False), default=None, expose_value=False,
                                callback=_remember, help="Log file for process reports and warnings [default: a new "
                                "file under $REACTMLIP_LOG_DIR or ~/.aiida/reactmlip-logs].")(function)
        function = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_remember,
                                help="Also show AiiDA's process reports and warnings on the console (they always go "
                                "to the log file).")(function)
        function = click.option("--dry-run", is_flag=True, help="Only check the file and show what would run.")(function)
        function = click.option("--output", type=click.Path(file_okay=False), default=None,
                                help=f"Folder for the report (default: results/<{kind} name>).")(function)
        return click.argument("file", type=click.Path(exists=True, dir_okay=False))(function)

    return decorate


def load_file(loader: t.Callable, file, echo: t.Callable[[str], None]):
    """``loader(file)``; its deprecation warnings echoed as ``warning: ...``, a ValueError or KeyError as a click error."""
    from aiida_reactmlip.specs.files import DeprecatedKeyWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecatedKeyWarning)
        try:
            spec = loader(file)
        except (ValueError, KeyError) as exception:
            raise click.ClickException(str(exception)) from exception
    for warning in caught:
        if issubclass(warning.category, DeprecatedKeyWarning):
            echo(f"warning: {warning.message}")
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return spec


def check_finished(node, hint: str = "") -> None:
    """A click error naming the process, its exit status and message unless ``node`` finished ok."""
    if not node.is_finished_ok:
        raise click.ClickException(f"{node.process_label}<{node.pk}> failed: [{node.exit_status}] {node.exit_message}. "
                                   f"Inspect with `verdi process report {node.pk}`{hint}.")


def run_file(ctx, file, dry_run: bool, echo, *, load: t.Callable, describe: t.Callable, run: t.Callable,
             report: t.Callable) -> None:
    """Read ``file`` with ``load``, ``describe(spec)``; unless ``dry_run``: load the profile, ``run(spec)`` (a
    ValueError, i.e. refused inputs, becomes a click error), ``report(spec, result)`` -> files written (with
    ``index.html``), then the report's path and the wall time."""
    spec = load_file(load, file, echo)
    describe(spec)
    if dry_run:
        return
    profile = load_profile_or_fail(ctx)
    echo(f"profile {profile.name}")
    start = time.perf_counter()
    import pathlib

    from .console import QuietConsole
    from .interrupts import InterruptGuard

    quiet = QuietConsole(pathlib.Path(file).stem, verbose=bool(ctx.meta.get("reactmlip_verbose")),
                         log_file=ctx.meta.get("reactmlip_log_file"))
    try:
        # Ctrl-C / SIGTERM: the jobs of this run are stopped and its unfinished processes marked killed
        with InterruptGuard(echo, resume="rerun the same command"), quiet:  # reports to the log file
            result = run(spec)
    except ValueError as exception:  # input validation: nothing ran
        raise click.ClickException(str(exception)) from exception
    echo(quiet.summary())
    files = report(spec, result)
    echo(f"report: {files['index.html'].resolve()}")
    echo(f"wall time {time.perf_counter() - start:.1f} s")


def load_node_or_fail(identifier, node_class=None, what: str = "node"):
    """The node of pk/UUID ``identifier`` (an instance of ``node_class`` when given), else a click error."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        node = orm.load_node(identifier)
    except (NotExistent, MultipleObjectsError, ValueError) as exception:
        raise click.ClickException(f"no {what} with pk/uuid {identifier}") from exception
    if node_class is not None and not isinstance(node, node_class):
        name = node_class.__name__
        article = "an" if name[0] in "AEIOM" else "a"  # an MlipModelData, a LabelledDatasetData
        raise click.ClickException(f"{what} {identifier} is a {type(node).__name__}, not {article} {name}")
    return node


def run_with_ticks(builder, tick: t.Callable, interval: float = 1.0):
    """Run ``builder`` in this interpreter (no daemon), calling ``tick(node)`` every ``interval`` seconds while
    it runs and once when it ends; return the process node."""
    from aiida.manage import get_manager

    runner = get_manager().get_runner()
    process = runner.instantiate_process(builder)  # through the runner: an InterruptGuard tracks it
    node = process.node

    def again():
        tick(node)
        if not node.is_terminated:
            runner.loop.call_later(interval, again)

    runner.loop.call_soon(again)
    process.execute()
    tick(node)
    return node
