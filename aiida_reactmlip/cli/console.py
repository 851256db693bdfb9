"""A quiet console for the run commands: a progress bar, the result table and paths, nothing else.

AiiDA's process REPORT lines (and every other log record of AiiDA, plumpy, kiwipy) and Python warnings
(setuptools' ``pkg_resources`` and friends) go to a log file whose path the command prints; ``-v`` also
shows them on the console, rendered by rich above the progress bar instead of through it. Errors still
reach the console. Use::

    @console_options
    def cmd(..., verbose, log_file):
        console = Console()
        with QuietConsole("label", console, verbose=verbose, log_file=log_file) as quiet:
            ...
        quiet.print_summary()
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import pathlib

import click

#: Loggers whose terminal handlers are silenced (all of AiiDA's configured loggers, plus warnings and root).
LOGGERS = ("aiida", "plumpy", "kiwipy", "disk_objectstore", "paramiko", "alembic", "aio_pika", "sqlalchemy",
           "py.warnings", "")

#: AiiDA's REPORT level (between INFO and WARNING), used by ``WorkChain.report``.
REPORT = 23


def default_log_dir() -> pathlib.Path:
    """Where run logs go: ``$REACTMLIP_LOG_DIR``, else ``<AiiDA config folder>/reactmlip-logs``."""
    if os.environ.get("REACTMLIP_LOG_DIR"):
        return pathlib.Path(os.environ["REACTMLIP_LOG_DIR"])
    try:
        from aiida.manage.configuration import get_config

        return pathlib.Path(get_config().dirpath) / "reactmlip-logs"
    except Exception:  # noqa: BLE001  (no AiiDA configuration yet)
        return pathlib.Path.home() / ".aiida" / "reactmlip-logs"


def console_options(function):
    """Click options ``-v/--verbose`` and ``--log-file`` for a command that runs processes."""

    @click.option("-v", "--verbose", is_flag=True,
                  help="Also show AiiDA's process reports and warnings on the console (they always go to the log file).")
    @click.option("--log-file", type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None,
                  help="Log file for process reports and warnings [default: a new file under $REACTMLIP_LOG_DIR "
                  "or ~/.aiida/reactmlip-logs].")
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)

    return wrapper


def _is_terminal_handler(handler: logging.Handler) -> bool:
    """A handler that writes to the terminal (AiiDA's ``console`` and ``cli`` handlers, plain stream handlers)."""
    if isinstance(handler, logging.FileHandler):
        return False
    if type(handler).__name__ in ("CliHandler",):
        return True
    return isinstance(handler, logging.StreamHandler)


class _Counter(logging.Handler):
    """Counts log records at WARNING and above (Python warnings, which libraries emit freely, excluded)."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.count = 0

    def emit(self, record):
        if record.name != "py.warnings":
            self.count += 1


class QuietConsole:
    """Context manager: terminal log handlers raised to ERROR, a log file from REPORT up, warnings captured.

    :param command: name used in the default log file name (``<command>-<timestamp>.log``).
    :param console: the rich Console the command prints to (``-v`` renders log records through it).
    :param verbose: also show REPORT lines and warnings on the console.
    :param log_file: explicit log file path (parents created); default under :func:`default_log_dir`.
    """

    def __init__(self, command: str, console=None, verbose: bool = False, log_file: pathlib.Path | None = None):
        self.command = command
        self.console = console
        self.verbose = verbose
        if log_file is None:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            log_file = default_log_dir() / f"{command}-{stamp}.log"
        self.path = pathlib.Path(log_file).absolute()
        self._saved: list[tuple[logging.Handler, int]] = []
        self._added: list[tuple[logging.Logger, logging.Handler]] = []
        self._counter = _Counter()

    @property
    def warnings(self) -> int:
        """Log records at WARNING or above (not Python warnings) written while the context was active."""
        return self._counter.count

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(self.path, encoding="utf8")
        file_handler.setLevel(REPORT)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s [%(levelname)s] %(message)s"))
        extra: list[logging.Handler] = [file_handler, self._counter]
        if self.verbose:
            from rich.logging import RichHandler

            rich_handler = RichHandler(console=self.console, level=REPORT, show_path=False, markup=False)
            extra.append(rich_handler)
        for name in LOGGERS:
            logger = logging.getLogger(name)
            for handler in logger.handlers:
                if _is_terminal_handler(handler):
                    self._saved.append((handler, handler.level))
                    handler.setLevel(logging.ERROR)
            if name == "" or not logger.propagate:  # a propagating logger reaches root's handlers
                for handler in extra:
                    logger.addHandler(handler)
                    self._added.append((logger, handler))
        logging.captureWarnings(True)
        return self

    def __exit__(self, *exc):
        logging.captureWarnings(False)
        for logger, handler in self._added:
            logger.removeHandler(handler)
            if isinstance(handler, logging.FileHandler):
                handler.close()
        for handler, level in self._saved:
            handler.setLevel(level)
        self._saved.clear()
        self._added.clear()
        return False

    def summary(self) -> str:
        """One line: where the log is and how many warnings it holds."""
        note = f" ({self.warnings} warning(s))" if self.warnings else ""
        return f"log: {self.path}{note}"

    def print_summary(self) -> None:
        text = self.summary()
        if self.console is not None:
            self.console.print(text, highlight=False, soft_wrap=True)
        else:
            click.echo(text)


def job_states(nodes) -> dict[str, int]:
    """Counts of process ``nodes`` by state: done (finished ok), failed (terminated otherwise), running."""
    counts = {"done": 0, "failed": 0, "running": 0}
    for node in nodes:
        state = "done" if node.is_finished_ok else "failed" if node.is_terminated else "running"
        counts[state] += 1
    return counts
