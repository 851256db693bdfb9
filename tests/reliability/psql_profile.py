"""A throw-away production profile for tests and measurements: PostgreSQL storage, RabbitMQ broker, a daemon.

Used by the scenario scripts of ``tests/daemon`` and ``tests/reliability`` (each runs in its own process with
a
private ``AIIDA_PATH``, see :func:`run_scenario`). The profile and its database are named
``<prefix><random>``;
:func:`throwaway_profile` stops the daemon, removes the profile and drops the database whatever happened.

Start marks: :func:`marked_code` makes a copy of a code whose job script appends ``start``/``end`` lines
(code,
working directory, epoch seconds) to one marks file, so that a scenario can count how often pw.x or the runner
really started in each working directory, independently of what the database says.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
RMQ = {"broker_protocol": "amqp", "broker_username": "guest", "broker_password": "guest",
       "broker_host": "127.0.0.1",
       "broker_port": 5672, "broker_virtual_host": ""}
RESULT_PREFIX = "RESULT "


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def services_missing() -> str | None:
    """A message naming the service that is not running (PostgreSQL, RabbitMQ), else None."""
    if not port_open(PG["port"]):
        return "PostgreSQL is not running on 127.0.0.1:5432 (.ci/run starts it)"
    if not port_open(RMQ["broker_port"]):
        return "RabbitMQ is not running on 127.0.0.1:5672 (.ci/run starts it)"
    return None


def verdi(profile: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``verdi -p PROFILE ARGS`` (the ``verdi`` of this Python environment first on PATH)."""
    executable = pathlib.Path(sys.executable).parent / "verdi"
    command = [str(executable) if executable.exists() else "verdi", "-p", profile, *args]
    return subprocess.run(command, check=check, capture_output=True, text=True, timeout=timeout)


def _drop_database(name: str) -> bool:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return connection.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                                  (name,)).fetchone()[0] == 0


def create_psql_profile(name: str, repository_dir: str | os.PathLike, options: dict | None = None):
    """Create database ``name`` and a ``core.psql_dos`` + ``core.rabbitmq`` profile of that name; load it.

    ``options``: profile configuration options (``runner.poll.interval``, ``caching.enabled_for``, ...).
    """
    import psycopg
    from aiida import load_profile
    from aiida.manage.configuration import create_profile, get_config

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    config = get_config(create=True)
    profile = create_profile(
        config,
        storage_backend="core.psql_dos",
        storage_config={
            "database_engine": "postgresql_psycopg", "database_hostname": PG["host"], "database_port": PG["port"],
            "database_username": PG["user"], "database_password": "", "database_name": name,
            "repository_uri": f"file://{repository_dir}",
        },
        broker_backend="core.rabbitmq",
        broker_config=RMQ,
        name=name,
        email="reliability-test@localhost",
    )
    for option, value in {"warnings.rabbitmq_version": False, **(options or {})}.items():
        profile.set_option(option, value)
    config.update_profile(profile)
    config.store()
    return load_profile(name, allow_switch=True)


def remove_psql_profile(name: str) -> bool:
    """Stop the daemon of profile ``name``, remove the profile and drop its database; True when it is gone."""
    with contextlib.suppress(Exception):
        verdi(name, "daemon", "stop", check=False, timeout=180)
    with contextlib.suppress(Exception):
        from aiida.manage import get_manager

        get_manager().reset_profile()
    with contextlib.suppress(Exception):
        from aiida.manage.configuration import get_config

        config = get_config()
        if name in config.profile_names:
            config.remove_profile(name)
            config.store()
    return _drop_database(name)


@contextlib.contextmanager
def throwaway_profile(repository_dir: str | os.PathLike, prefix: str = "rel_", options: dict | None = None,
                      result: dict | None = None) -> Iterator[str]:
    """A fresh PostgreSQL + RabbitMQ profile, loaded, for the ``with`` block; gone afterwards.

    ``result`` (a dict) receives ``profile``, ``storage``, ``broker`` and, at exit, ``database_dropped``.
    """
    result = {} if result is None else result
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    result["profile"] = name
    try:
        profile = create_psql_profile(name, repository_dir, options)
        result["storage"], result["broker"] = profile.storage_backend, profile.process_control_backend
        yield name
    finally:
        result["database_dropped"] = remove_psql_profile(name)


# ------------------------------------------------------------------------------------------------ daemon work


def start_daemon(profile: str, workers: int) -> None:
    """``verdi daemon start WORKERS``; waits until the workers run."""
    verdi(profile, "daemon", "start", str(workers), timeout=180)
    wait_for_workers(profile, workers)


def worker_pids(profile: str) -> list[int]:
    """PIDs of the daemon workers of ``profile`` (from circus, as ``verdi daemon status`` shows them)."""
    from aiida.engine.daemon.client import get_daemon_client

    info = get_daemon_client(profile).get_worker_info().get("info", {})
    return sorted(int(pid) for pid in info)


def wait_for_workers(profile: str, count: int, exclude: tuple[int, ...] = (),
                     timeout: float = 120) -> list[int]:
    """Wait until ``count`` live workers run, none of them in ``exclude`` (killed ones); their PIDs."""
    deadline = time.time() + timeout
    pids: list[int] = []
    while time.time() < deadline:
        with contextlib.suppress(Exception):
            pids = [pid for pid in worker_pids(profile) if pid not in exclude and _alive(pid)]
            if len(pids) == count:
                return pids
        time.sleep(0.5)
    raise TimeoutError(f"daemon of {profile}: {len(pids)} worker(s) running after {timeout} s, expected {count}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    status = pathlib.Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def kill_workers(pids: list[int]) -> list[int]:
    """SIGKILL each worker of ``pids``; the PIDs signalled."""
    killed = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


# ---------------------------------------------------------------------------------------------------- start m


def marked_code(label: str, source, marks_file: pathlib.Path, extra_prepend: str = ""):
    """A copy ``label`` of InstalledCode ``source`` whose job script appends ``start LABEL WORKDIR EPOCH`` to
    ``marks_file`` before the executable runs and ``end LABEL WORKDIR EPOCH STATUS`` after it."""
    from aiida import orm

    mark = f'echo "{{event}} {label} $PWD $(date +%s.%N){{status}}" >> {marks_file}'
    code = orm.InstalledCode(
        label=label, computer=source.computer, filepath_executable=str(source.filepath_executable),
        default_calc_job_plugin=source.default_calc_job_plugin,
        prepend_text="\n".join(filter(None, [source.prepend_text, extra_prepend,
                                             mark.format(event="start", status="")])),
        append_text=mark.format(event="end", status=" $?"),
    )
    return code.store()


def read_marks(marks_file: pathlib.Path) -> list[dict]:
    """The marks of ``marks_file``: dicts event (start/end), code, workdir, time (epoch s)."""
    if not marks_file.exists():
        return []
    marks = []
    for line in marks_file.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4:
            marks.append({"event": parts[0], "code": parts[1], "workdir": parts[2], "time": float(parts[3])})
    return marks


def marks_by_workdir(marks: list[dict], event: str = "start") -> dict[str, int]:
    """How many marks of ``event`` each working directory has."""
    counts: dict[str, int] = {}
    for mark in marks:
        if mark["event"] == event:
            counts[mark["workdir"]] = counts.get(mark["workdir"], 0) + 1
    return counts


# ------------------------------------------------------------------------------------------ scenario processe


def run_scenario(script: pathlib.Path, args: list[str], workdir: pathlib.Path, timeout: float) -> dict:
    """Run a scenario script in its own process with a private ``AIIDA_PATH`` under ``workdir``; its RESULT
    dict.

    The script prints ``RESULT {json}`` as its last result line. Raises AssertionError with the output's tail
    when there is none.
    """
    env = dict(os.environ)
    env["AIIDA_PATH"] = str(workdir / "aiida")
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}:{env['PATH']}"
    env["OMP_NUM_THREADS"] = "1"
    process = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True,
                             timeout=timeout, cwd=workdir)
    lines = [line for line in process.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert lines, f"no result; stdout:\n{process.stdout[-3000:]}\nstderr:\n{process.stderr[-5000:]}"
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def print_result(result: dict) -> None:
    """Print ``result`` as the RESULT line :func:`run_scenario` reads."""
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)
