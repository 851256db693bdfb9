"""The run-once guard of the localhost computer's job scripts (``provision.RUN_ONCE_PREPEND_TEXT``).

aiida-core 2.9.4 submits a job script a second time into the same working directory when a daemon worker was
killed after the scheduler accepted the job and before the job id was stored. The guard makes that second
submission wait for the first and end without running the executable again. These tests run the job script
that AiiDA itself writes (a dry run of ``core.arithmetic.add`` on the computer ``reactmlip setup`` makes), with
a code that marks every start of its executable.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

import pytest

SLEEP_S = 3


@pytest.fixture()
def job_folder(localhost, tmp_path):
    """The folder of a dry-run ``core.arithmetic.add`` job (1 + 2, sleeping SLEEP_S s) on ``localhost``."""
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.plugins import CalculationFactory

    code = orm.InstalledCode(
        label=f"bash-marked-{time.time_ns()}", computer=localhost, filepath_executable="/bin/bash",
        default_calc_job_plugin="core.arithmetic.add", prepend_text='echo start >> starts.txt',
    ).store()
    builder = CalculationFactory("core.arithmetic.add").get_builder()
    builder.code, builder.x, builder.y = code, orm.Int(1), orm.Int(2)
    builder.metadata.options.sleep = SLEEP_S
    builder.metadata.options.resources = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
    builder.metadata.dry_run = True
    builder.metadata.store_provenance = False
    cwd = os.getcwd()
    os.chdir(tmp_path)  # a dry run writes its folder under the working directory
    try:
        _, node = run_get_node(builder)
    finally:
        os.chdir(cwd)
    folder = pathlib.Path(node.dry_run_info["folder"])
    assert (folder / "_aiidasubmit.sh").exists()
    return folder


def _submit(folder: pathlib.Path) -> subprocess.Popen:
    """Start the job script as the ``core.direct`` scheduler does: a detached bash in the job's folder."""
    return subprocess.Popen(["bash", "_aiidasubmit.sh"], cwd=folder, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _starts(folder: pathlib.Path) -> int:
    marks = folder / "starts.txt"
    return len(marks.read_text().split()) if marks.exists() else 0


def test_localhost_job_script_carries_the_guard(localhost, job_folder):
    from aiida_reactmlip import provision

    script = (job_folder / "_aiidasubmit.sh").read_text()
    assert provision.RUN_ONCE_PREPEND_TEXT in script and provision.RUN_ONCE_APPEND_TEXT in script
    # the guard comes before the code's own prepend text (the executable's start mark) and the end mark after
    # the executable
    assert script.index("flock 9") < script.index("echo start") < script.index("'/bin/bash'") \
        < script.index(".reactmlip-run.done  #")


def test_second_submission_waits_and_does_not_run_again(job_folder):
    first = _submit(job_folder)
    time.sleep(0.5)
    second = _submit(job_folder)  # the resubmission of a reloaded CalcJob, while the first still runs
    assert second.wait(timeout=60) == 0
    assert first.poll() is not None, "the second submission ended before the first"
    assert first.wait() == 0
    assert _starts(job_folder) == 1
    assert (job_folder / "aiida.out").read_text().strip() == "3"
    third = _submit(job_folder)  # after the end as well
    assert third.wait(timeout=30) == 0
    assert _starts(job_folder) == 1
    from aiida_reactmlip import provision

    assert provision.RUN_ONCE_MESSAGE in (job_folder / "_scheduler-stderr.txt").read_text()


def test_a_job_killed_before_its_end_runs_again(job_folder):
    first = _submit(job_folder)
    deadline = time.time() + 30
    while _starts(job_folder) == 0 and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)  # the job and its executable die: no end mark
    first.wait()
    assert not (job_folder / ".reactmlip-run.done").exists()
    second = _submit(job_folder)
    assert second.wait(timeout=60) == 0
    assert _starts(job_folder) == 2
    assert "not run again" not in (job_folder / "_scheduler-stderr.txt").read_text()
    assert (job_folder / "aiida.out").read_text().strip() == "3"


def test_localhost_made_before_the_guard_is_brought_up_to_date(aiida_profile):
    from aiida import orm

    from aiida_reactmlip import provision

    old = orm.Computer(label=f"old-localhost-{time.time_ns()}", hostname="localhost",
                       description=provision.LOCALHOST_DESCRIPTION, transport_type="core.local",
                       scheduler_type="core.direct", workdir="/tmp/old-localhost").store()
    old.set_prepend_text(provision.MPI_PREPEND_TEXT)
    old.configure(safe_interval=0.0, use_login_shell=False)
    report = provision.ProvisionReport()
    computer = provision.ensure_localhost(old.label, report)
    assert computer.get_prepend_text() == provision.LOCALHOST_PREPEND_TEXT
    assert computer.get_append_text() == provision.RUN_ONCE_APPEND_TEXT
    assert report.lines[-1][-1] == "updated (run-once guard)"
    # a user's own computer (another description) is never changed
    own = orm.Computer(label=f"own-{time.time_ns()}", hostname="localhost", description="mine",
                       transport_type="core.local", scheduler_type="core.direct", workdir="/tmp/own").store()
    own.set_prepend_text(provision.MPI_PREPEND_TEXT)
    own.configure(safe_interval=0.0, use_login_shell=False)
    assert provision.ensure_localhost(own.label).get_prepend_text() == provision.MPI_PREPEND_TEXT
