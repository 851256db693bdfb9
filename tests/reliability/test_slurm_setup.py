"""Fast checks of the Slurm side without a cluster: the slurm.conf of the local node, the computer and codes
`reactmlip setup --computer-slurm` makes for a remote cluster, its error messages, and the docs block
``reliability-slurm`` against docs/results/reliability-slurm.json."""

from __future__ import annotations

import click
import pytest
from aiida import orm

from aiida_reactmlip import provision, slurm
from aiida_reactmlip.cli.cmd_setup import setup_slurm_computer
from aiida_reactmlip.report.docs_blocks import read_block

from . import slurm_results


def test_slurm_conf_has_the_essentials_of_a_one_node_cluster(tmp_path):
    text = slurm.slurm_conf(tmp_path, "node1", cpus=2, memory_mb=3000, partition="short")
    lines = text.splitlines()
    assert lines[0] == slurm.CONF_MARKER
    for line in (
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "MpiDefault=none",
        "SlurmctldHost=node1",
        f"StateSaveLocation={tmp_path / 'state'}",
        "NodeName=node1 CPUs=2 RealMemory=3000 State=UNKNOWN",
        "PartitionName=short Nodes=node1 Default=YES MaxTime=INFINITE State=UP",
    ):
        assert line in lines


def test_slurm_run_time_is_read_in_seconds():
    from .test_slurm import run_time_s

    assert (
        run_time_s("00:00:11") == 11 and run_time_s("01:02:03") == 3723 and run_time_s("1-00:00:05") == 86405
    )


def make_remote(tmp_path, **changes):
    key = tmp_path / "id_test"
    key.write_text("not a real key: no login in this test")
    arguments = {
        "report": provision.ProvisionReport(),
        "host": "login.example.org",
        "user": "alice",
        "key": str(key),
        "port": 2222,
        "trust_host_key": False,
        "partition": "short",
        "workdir": "/scratch/{username}/aiida",
        "label": None,
        "pw_executable": "/opt/qe/bin/pw.x",
        "neb_executable": "",
        "runner_executable": "/home/alice/venv/bin/reactmlip-runner",
        "mpiprocs_per_machine": 64,
        "check": False,
    }
    arguments.update(changes)
    setup_slurm_computer(**arguments)
    return arguments["report"]


def test_remote_slurm_computer_and_codes(aiida_profile, tmp_path):
    report = make_remote(tmp_path)
    computer = orm.load_computer("slurm-login.example.org")
    assert (computer.transport_type, computer.scheduler_type) == ("core.ssh", "core.slurm")
    assert computer.hostname == "login.example.org" and computer.get_workdir() == "/scratch/{username}/aiida"
    assert computer.get_default_mpiprocs_per_machine() == 64
    assert computer.get_prepend_text() == provision.MPI_PREPEND_TEXT
    assert computer.get_property("reactmlip_partition") == "short"
    auth = computer.get_authinfo(orm.User.collection.get_default()).get_auth_params()
    assert auth["username"] == "alice" and auth["port"] == 2222 and auth["key_policy"] == "RejectPolicy"
    assert (
        auth["safe_interval"] == 5.0 and auth["use_login_shell"] is True
    )  # a login node: be gentle, load modules
    pw = orm.load_code("pw@slurm-login.example.org")
    runner = orm.load_code("reactmlip-runner@slurm-login.example.org")
    assert (
        str(pw.filepath_executable) == "/opt/qe/bin/pw.x"
        and pw.default_calc_job_plugin == "quantumespresso.pw"
    )
    assert str(runner.filepath_executable) == "/home/alice/venv/bin/reactmlip-runner"
    assert pw.prepend_text == provision.QE_PREPEND_TEXT
    with pytest.raises(Exception, match="not exist|NotExistent|No result"):
        orm.load_code("neb@slurm-login.example.org")  # --neb-executable '' : none
    assert [row[2] for row in report.lines] == ["created"] * 3
    again = make_remote(tmp_path)  # idempotent
    assert [row[2] for row in again.lines] == ["exists"] * 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key": "/nonexistent/id_rsa"}, "SSH key file /nonexistent/id_rsa not found"),
        ({"workdir": None}, "--workdir is required for a remote cluster"),
        ({"runner_executable": None}, "--runner-executable is required"),
    ],
)
def test_setup_slurm_errors_say_what_to_do(aiida_profile, tmp_path, changes, message):
    with pytest.raises(click.ClickException, match=message):
        make_remote(tmp_path, label="slurm-errors", **changes)


def test_existing_label_with_another_host_is_refused(aiida_profile, tmp_path):
    make_remote(tmp_path, label="slurm-clash")
    with pytest.raises(click.ClickException, match="exists with hostname 'login.example.org'"):
        make_remote(tmp_path, label="slurm-clash", host="other.example.org")


def test_docs_block_equals_its_json():
    page = slurm_results.PAGE.read_text()
    assert read_block(page, slurm_results.BLOCK) == slurm_results.render(slurm_results.load())
