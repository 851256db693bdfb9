"""Interrupts of runs in this interpreter (the default profile: SQLite, no broker, ``aiida.engine.run``).

Without a broker nothing outside the interpreter can kill a process (``verdi process kill`` needs one), and
AiiDA's own interrupt handler kills only the top process: its children's scheduler jobs (pw.x started by
``core.direct``, which ignores the terminal's Ctrl-C because it runs in the background) kept running unseen
and their nodes stayed Waiting for good. :class:`InterruptGuard` closes that gap:

- every process the runner instantiates inside the guard is tracked and its node records its owner (this
  interpreter's pid, host and start time, extra :data:`OWNER_EXTRA`);
- SIGINT / SIGTERM stop the event loop between two steps (never inside one); on the way out the scheduler
  jobs of the tracked CalcJobs still running are killed (and, on localhost, any process still working in their
  folders), every tracked node not terminated is marked killed with a message, and one line says what was
  stopped and how to resume; the command exits with 128 + the signal number.

:func:`stale_processes` finds nodes left non-terminal by a run that is gone (SIGKILL, power loss) for
``reactmlip processes clean``; :mod:`aiida_reactmlip.cli.salvage` turns a pw.x that finished in such a folder
into a reusable calculation.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import typing as t

#: Extra on every process node run in-process under the guard: {"pid", "host", "started" (epoch s)}.
OWNER_EXTRA = "reactmlip_owner"
#: What AiiDA's own runner writes on the top process it kills on SIGINT (``Runner._run``).
AIIDA_INTERRUPT_TEXT = "runner received an interrupt"
#: Seconds a killed job gets to exit after SIGTERM before SIGKILL.
TERM_GRACE_S = 5.0


def owner_record() -> dict:
    """This interpreter as owner of the processes it runs: pid, host name, process start time (epoch s)."""
    import psutil

    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": round(psutil.Process().create_time(), 2),
    }


def owner_alive(record: dict | None) -> bool | None:
    """Whether the interpreter of ``record`` still runs: True/False on this host, None when unknown (no
    record, another host)."""
    import psutil

    if not record or record.get("host") != socket.gethostname():
        return None
    try:
        process = psutil.Process(int(record["pid"]))
        return abs(process.create_time() - float(record["started"])) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, ValueError):
        return False


def is_local(node) -> bool:
    """A CalcJob on a computer reached through ``core.local`` (its folder and job are on this host)."""
    computer = node.computer
    return computer is not None and computer.transport_type == "core.local"


def processes_in(folder: str) -> list:
    """psutil processes (of any user we may see) whose working directory is ``folder`` or below it."""
    import psutil

    folder = os.path.realpath(folder)
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            cwd = os.path.realpath(process.cwd())
        except (psutil.Error, OSError):
            continue
        if cwd == folder or cwd.startswith(folder + os.sep):
            found.append(process)
    return found


def job_running(node) -> bool | None:
    """Whether the scheduler job of CalcJobNode ``node`` still runs: on localhost (``core.direct``: the job id
    is a pid) any process in its folder counts; None when unknown (a remote computer)."""
    import psutil

    if not is_local(node):
        return None
    workdir = node.get_remote_workdir()
    if workdir and processes_in(workdir):
        return True
    job_id = node.get_job_id()
    if job_id and node.computer.scheduler_type == "core.direct":
        try:
            return psutil.Process(int(job_id)).is_running()
        except (psutil.NoSuchProcess, ValueError):
            return False
    return False


def _terminate(processes: list) -> int:
    """SIGTERM ``processes`` and their children, SIGKILL those alive after :data:`TERM_GRACE_S`; how many."""
    import psutil

    everything = {}
    for process in processes:
        try:
            everything[process.pid] = process
            for child in process.children(recursive=True):
                everything[child.pid] = child
        except psutil.NoSuchProcess:
            continue
    for process in everything.values():
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(everything.values()), timeout=TERM_GRACE_S)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    return len(everything)


def stop_job(node) -> str | None:
    """Kill the scheduler job of CalcJobNode ``node`` if it runs; a description of what was stopped, or None.

    The job is cancelled through the computer's scheduler (``core.direct``: ``kill`` of the job's pid and its
    descendants); on localhost, processes still working in the job's folder (a job whose id was not yet
recorded)     are terminated as well.
    """
    job_id = node.get_job_id()
    stopped = False
    if job_id and job_running(node) is not False:
        try:
            with node.computer.get_transport() as transport:
                scheduler = node.computer.get_scheduler()
                scheduler.set_transport(transport)
                stopped = bool(scheduler.kill_job(job_id))
        except Exception:  # noqa: BLE001  (a job that ended meanwhile, a transport error: the check below decides)
            stopped = False
    if is_local(node) and node.get_remote_workdir():
        leftovers = processes_in(node.get_remote_workdir())
        if leftovers:
            stopped = _terminate(leftovers) > 0 or stopped
    if not stopped:
        return None
    return f"{node.process_label}<{node.pk}> job {job_id or '(no id yet)'}"


def mark_killed(node, message: str) -> None:
    """Put a process node that no runner will continue into the terminal state KILLED, with ``message``."""
    from plumpy import ProcessState

    node.set_process_state(ProcessState.KILLED)
    node.set_process_status(message)
    try:
        node.delete_checkpoint()
    except Exception:  # noqa: BLE001  (no checkpoint)
        pass
    if not node.is_sealed:
        node.seal()


def non_terminal(nodes: t.Iterable) -> list:
    """The process nodes of ``nodes`` (deduplicated by pk, sorted) that are not terminated."""
    unique = {node.pk: node for node in nodes}
    return [unique[pk] for pk in sorted(unique) if not unique[pk].is_terminated]


def stop_and_mark(nodes: t.Iterable, message: str) -> tuple[list[str], list]:
    """Kill the running jobs of the non-terminal CalcJobs among ``nodes``, then mark every non-terminal one
    killed.

    :returns: (descriptions of the jobs stopped, the nodes marked killed)
    """
    from aiida import orm

    pending = non_terminal(nodes)
    stopped = [
        text for node in pending if isinstance(node, orm.CalcJobNode) for text in [stop_job(node)] if text
    ]
    for node in pending:
        mark_killed(node, message)
    return stopped, pending


def stale_processes() -> list[tuple[t.Any, str]]:
    """Process nodes of the loaded profile that are not terminated and whose runner is gone, with why.

    Only a profile without a broker: there, only the interpreter that created a process can run it. A node
    whose owner record (:data:`OWNER_EXTRA`) names a process that no longer runs is stale; a node without a
    record (a script's ``aiida.engine.run``) is stale when no other process on this host holds the profile's
    storage open.
    """
    from aiida import orm

    from .root import load_profile_or_fail

    profile = load_profile_or_fail()
    if profile.process_control_backend:
        return []
    query = orm.QueryBuilder().append(
        orm.ProcessNode, filters={"attributes.process_state": {"in": ["created", "waiting", "running"]}}
    )
    nodes = sorted((row[0] for row in query.iterall()), key=lambda n: n.pk)
    storage_busy = None
    stale = []
    for node in nodes:
        record = node.base.extras.get(OWNER_EXTRA, None)
        alive = owner_alive(record)
        if alive is False:
            stale.append((node, f"its runner (pid {record['pid']}) is gone"))
        elif alive is None and record is None:
            if storage_busy is None:
                storage_busy = storage_in_use_elsewhere(profile)
            if not storage_busy:
                stale.append((node, "no process on this host has the profile's storage open"))
    return stale


def storage_in_use_elsewhere(profile) -> bool:
    """Whether another process of this host has a file of ``profile``'s storage open (an SQLite runner)."""
    import psutil

    folder = profile.storage_config.get("filepath")
    if not folder:
        return True  # not a folder-based storage: assume busy
    folder = os.path.realpath(folder)
    for process in psutil.process_iter(["pid"]):
        if process.pid == os.getpid():
            continue
        try:
            if any(os.path.realpath(f.path).startswith(folder + os.sep) for f in process.open_files()):
                return True
        except (psutil.Error, OSError):
            continue
    return False


class InterruptGuard:
    """Context manager around an in-process run: tracks its processes, turns SIGINT/SIGTERM into a clean stop.

    :param echo: prints one plain line (the summary after an interrupt).
    :param resume: what to tell the user to do next, e.g. "rerun the same command".
    """

    def __init__(self, echo: t.Callable[[str], None], resume: str = "rerun the same command"):
        self.echo = echo
        self.resume = resume
        self.signal: int | None = None
        self.tracked: dict[int, t.Any] = {}
        self._owner = None
        self._runner = None
        self._handlers: dict[int, t.Any] = {}

    def track(self, node) -> None:
        """Follow process ``node`` (and everything it calls) and record this interpreter as its owner."""
        self.tracked[node.pk] = node
        try:
            node.base.extras.set(OWNER_EXTRA, self._owner or owner_record())
        except Exception:  # noqa: BLE001  (an unstored node: nothing to record)
            pass

    def _instantiate(self, original):
        def instantiate(process, *args, **kwargs):
            process_inited = original(process, *args, **kwargs)
            self.track(process_inited.node)
            return process_inited

        return instantiate

    def _on_signal(self, signum, _frame):
        if self.signal is not None:
            self.echo(
                f"{signal.Signals(signum).name} again: still stopping the jobs of this run, please wait"
            )
            return
        self.signal = signum
        loop = self._runner.loop if self._runner is not None else None
        if loop is not None and loop.is_running():
            loop.stop()  # execute() ends between two steps with "Event loop stopped before Future completed"
        else:
            raise KeyboardInterrupt

    def __enter__(self):
        from aiida.manage import get_manager

        self._owner = owner_record()
        self._runner = get_manager().get_runner()
        self._runner.instantiate_process = self._instantiate(
            type(self._runner).instantiate_process.__get__(self._runner)
        )
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._handlers[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)
        return self

    def _restore(self) -> None:
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
        self._handlers.clear()
        if self._runner is not None:
            self._runner.__dict__.pop("instantiate_process", None)

    def _interrupted_by_aiida(self) -> bool:
        """AiiDA's ``run`` handled the signal itself: it killed the top process with its interrupt message."""
        return any(
            node.is_killed and AIIDA_INTERRUPT_TEXT in (node.process_status or "")
            for node in self.tracked.values()
        )

    def __exit__(self, exc_type, exc, traceback):
        self._restore()
        interrupted = (
            self.signal is not None
            or (exc_type is not None and issubclass(exc_type, KeyboardInterrupt))
            or self._interrupted_by_aiida()
        )
        if not interrupted:
            why = "an error" if exc_type is not None else "its end"
            stopped, marked = self._sweep(
                f"killed: the run in this interpreter reached {why} before this process finished"
            )
            if marked:
                self.echo(
                    f"stopped {len(stopped)} job(s) and marked {len(marked)} unfinished process(es) killed "
                    "after the run ended"
                )
            return False
        name = signal.Signals(self.signal).name if self.signal else "SIGINT"
        ignore = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            stopped, marked = self._sweep(
                f"killed: the reactmlip command running it in this interpreter got {name}"
            )
        finally:
            for signum, handler in ignore.items():
                signal.signal(signum, handler)
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # the stopped loop's pending tasks, at exit
        jobs = (
            f"stopped {len(stopped)} running job(s) ({', '.join(stopped)})"
            if stopped
            else "no job was running"
        )
        self.echo(
            f"interrupted ({name}): {jobs}; marked {len(marked)} unfinished process(es) killed; "
            f"finished calculations are kept: {self.resume}."
        )
        raise SystemExit(128 + (self.signal or signal.SIGINT))

    def _sweep(self, message: str) -> tuple[list[str], list]:
        """Stop and mark every tracked node (and its descendants) that is not terminated."""
        nodes = []
        for node in self.tracked.values():
            nodes.append(node)
            nodes.extend(node.called_descendants)
        return stop_and_mark(nodes, message)
