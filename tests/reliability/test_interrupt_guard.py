"""Interrupt handling without pw.x: the guard's sweep, `reactmlip processes clean`, the size guard."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import ase.io
import pytest
from aiida import orm
from ase import Atoms
from click.testing import CliRunner
from plumpy import ProcessState

from aiida_reactmlip.cli import cmd_root
from aiida_reactmlip.cli.interrupts import OWNER_EXTRA, InterruptGuard, owner_alive, owner_record
from aiida_reactmlip.cli.size_guard import estimate_pw_cost, size_refusal


def invoke(*args, env=None):
    return CliRunner().invoke(
        cmd_root, list(args), catch_exceptions=False, env={"COLUMNS": "200", **(env or {})}
    )


def dead_owner() -> dict:
    """The owner record of a process that has ended."""
    child = subprocess.Popen(["true"])
    child.wait()
    return {"pid": child.pid, "host": socket.gethostname(), "started": 0.0}


def waiting_workflow(owner: dict | None) -> orm.WorkflowNode:
    node = orm.WorkflowNode()
    node.set_process_state(ProcessState.WAITING)
    node.set_process_label("FakeWorkChain")
    node.store()
    if owner is not None:
        node.base.extras.set(OWNER_EXTRA, owner)
    return node


def waiting_calcjob(localhost, workdir, job_id, owner: dict) -> orm.CalcJobNode:
    node = orm.CalcJobNode(computer=localhost)
    node.set_process_state(ProcessState.WAITING)
    node.set_process_label("FakeCalculation")
    node.set_option("resources", {"num_machines": 1, "num_mpiprocs_per_machine": 1})
    node.store()
    node.set_remote_workdir(str(workdir))
    node.set_job_id(str(job_id))
    node.base.extras.set(OWNER_EXTRA, owner)
    return node


def test_owner_records():
    assert owner_alive(owner_record()) is True
    assert owner_alive(dead_owner()) is False
    assert owner_alive(None) is None
    assert owner_alive({"pid": 1, "host": "elsewhere", "started": 0}) is None


def test_guard_on_keyboard_interrupt_marks_tracked_nodes_killed(aiida_profile):
    lines = []
    node = waiting_workflow(None)
    before = signal.getsignal(signal.SIGINT)  # Python's default_int_handler; SIG_IGN in a shell's background job
    with pytest.raises(SystemExit) as exit_info:
        with InterruptGuard(lines.append, resume="rerun it") as guard:
            guard.track(node)
            assert signal.getsignal(signal.SIGINT) == guard._on_signal
            raise KeyboardInterrupt
    assert exit_info.value.code == 130
    assert signal.getsignal(signal.SIGINT) is before  # the handler it found is put back
    assert node.is_killed and node.is_sealed
    assert "got SIGINT" in node.process_status
    assert node.base.extras.get(OWNER_EXTRA)["pid"] == os.getpid()
    assert lines == [
        "interrupted (SIGINT): no job was running; marked 1 unfinished process(es) killed; finished "
        "calculations are kept: rerun it."
    ]


def test_guard_turns_sigterm_into_a_stop(aiida_profile):
    lines = []
    node = waiting_workflow(None)
    with pytest.raises(SystemExit) as exit_info:
        with InterruptGuard(lines.append) as guard:
            guard.track(node)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
    assert exit_info.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert node.is_killed and "got SIGTERM" in node.process_status
    assert lines[0].startswith("interrupted (SIGTERM): no job was running; marked 1 unfinished process(es) killed")


def test_guard_leaves_a_finished_run_alone(aiida_profile):
    lines = []
    node = orm.WorkflowNode()
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(0)
    node.store()
    with InterruptGuard(lines.append) as guard:
        guard.track(node)
    assert lines == [] and node.is_finished_ok


def test_processes_clean_stops_an_orphan_job_and_marks_nodes(localhost, tmp_path):
    workdir = tmp_path / "job"
    workdir.mkdir()
    orphan = subprocess.Popen(["sleep", "120"], cwd=workdir)  # stands for a pw.x whose runner died
    try:
        owner = dead_owner()
        calc = waiting_calcjob(localhost, workdir, orphan.pid, owner)
        parent = waiting_workflow(owner)
        alive = waiting_workflow(owner_record())  # run by a live interpreter (this one): not touched
        listing = invoke("processes", "clean")
        assert listing.exit_code == 0, listing.output
        assert (
            f"FakeCalculation<{calc.pk}> waiting, job {orphan.pid} still running: its runner (pid "
            f"{owner['pid']}) is gone" in listing.output
        )
        assert f"FakeWorkChain<{parent.pk}> waiting" in listing.output
        assert f"<{alive.pk}>" not in listing.output
        assert "`verdi process kill` cannot reach them" in listing.output
        assert "rerun with --yes" in listing.output
        assert orphan.poll() is None and not calc.is_terminated

        cleaned = invoke("processes", "clean", "--yes")
        assert cleaned.exit_code == 0, cleaned.output
        assert f"stopped 1 job(s): FakeCalculation<{calc.pk}> job {orphan.pid}" in cleaned.output
        assert "marked 2 process node(s) killed" in cleaned.output
        assert orphan.wait(timeout=10) == -signal.SIGTERM
        assert calc.is_killed and parent.is_killed and not alive.is_terminated
        assert "reactmlip processes clean" in calc.process_status

        again = invoke("processes", "clean")
        assert "no unfinished process node without a runner" in again.output
    finally:
        if orphan.poll() is None:
            orphan.kill()
        alive.set_process_state(ProcessState.KILLED)


def test_cost_estimate_scales_with_atoms_and_kpoints():
    small, large = estimate_pw_cost(13, ranks=2), estimate_pw_cost(26, ranks=2)
    assert small == pytest.approx({"seconds": 38.0, "memory_mb": 260.0})
    assert large["seconds"] == pytest.approx(8 * 38.0) and large["memory_mb"] == pytest.approx(4 * 260.0)
    assert estimate_pw_cost(13, kpoints=4, ranks=2)["seconds"] == pytest.approx(4 * 38.0)


def test_size_refusal_message():
    sizes = {"small": {"atoms": 10}, "big": {"atoms": 250, "kpoints": 1, "ecutwfc": 30.0, "ranks": 1}}
    message = size_refusal(sizes, 200)
    assert message.startswith("1 structure(s) have more than 200 atoms; the largest, big, has 250 atoms")
    assert "GB per pw.x scf" in message and "--yes" in message and "--max-atoms N" in message
    assert size_refusal(sizes, 250) is None and size_refusal(sizes, 0) is None


def test_label_refuses_a_large_structure(codes, pseudo_family, tmp_path):
    path = tmp_path / "big.xyz"
    positions = [[1.5 * i, 1.5 * j, 1.5 * k] for i in range(6) for j in range(6) for k in range(6)]
    ase.io.write(path, Atoms(f"H{len(positions)}", positions=positions, cell=[10.0] * 3, pbc=True))
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    result = invoke("label", str(path), "--protocol", "fast")
    assert result.exit_code != 0
    assert "1 structure(s) have more than 200 atoms; the largest, big_0000, has 216 atoms" in result.output
    assert "Pass --yes to label them anyway" in result.output
    limited = invoke("label", str(path), "--protocol", "fast", env={"REACTMLIP_MAX_ATOMS": "100"})
    assert "more than 100 atoms" in limited.output
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before
