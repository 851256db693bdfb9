"""A real scheduler: label, evaluate and fine-tune through a one-node Slurm cluster on this machine, reached
by AiiDA over SSH (``core.ssh`` + ``core.slurm``), against the same WorkChains on ``localhost``; jobs
cancelled with ``scancel`` while they run, retried by the restart WorkChains.

The cluster (munged, slurmctld, slurmd, sshd) is started by a module fixture (Debian's packages are installed
when missing: root) and stopped at the end. ``REACTMLIP_WRITE_SLURM_RESULTS=1`` also writes
docs/results/reliability-slurm.json and the block ``reliability-slurm`` of docs/reliability.md.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_reactmlip import provision
from aiida_reactmlip import slurm as slurm_module
from aiida_reactmlip.systems import get_system
from aiida_reactmlip.workflows.benchmark import BenchmarkWorkChain, link_label
from aiida_reactmlip.workflows.label import LabelWorkChain
from aiida_reactmlip.workflows.restart import EvaluateBaseWorkChain, FinetuneBaseWorkChain, failure_reason

from . import slurm_results

pytestmark = [pytest.mark.slow, pytest.mark.pwx, pytest.mark.mlip]

SERIAL_PW = {
    "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
    "withmpi": False,
    "max_wallclock_seconds": 600,
}
#: A tiny CHGNet fine-tune (seeded): 2 epochs of batch 1 on the two labelled H2 frames.
FINETUNE = {"learning_rate": 1e-4, "epochs": 2, "batch_size": 1, "seed": 0, "num_threads": 1}
#: Filled by the tests below, written to docs/results/ by the last one when asked.
RESULTS: dict = {"jobs": [], "comparisons": [], "scancel": []}


def run_time_s(run_time: str) -> int:
    """Seconds of Slurm's ``[D-]HH:MM:SS`` run time."""
    days, _, clock = run_time.rpartition("-")
    seconds = 0
    for part in clock.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds + 86400 * int(days or 0)


def slurm_jobs(node) -> list:
    """The CalcJobs below ``node`` (itself included), oldest first."""
    if isinstance(node, orm.CalcJobNode):
        return [node]
    found = [child for child in node.called_descendants if isinstance(child, orm.CalcJobNode)]
    return sorted(found, key=lambda child: child.ctime)


def record_jobs(step: str, node, computer) -> list[dict]:
    """Check every CalcJob of ``node`` ran on ``computer`` through Slurm (numeric job id, known to scontrol);
    add them to the results."""
    rows = []
    for job in slurm_jobs(node):
        assert job.computer.uuid == computer.uuid
        job_id = job.get_job_id()
        assert job_id is not None and job_id.isdigit(), job_id
        state = slurm_module.scheduler_job_state(job_id)
        assert state, f"scontrol does not know job {job_id}"
        assert state["JobName"] == f"aiida-{job.pk}"
        submitted, started = (
            datetime.datetime.fromisoformat(state[key]) for key in ("SubmitTime", "StartTime")
        )
        rows.append(
            {
                "step": step,
                "process": job.process_label,
                "uuid": job.uuid,
                "job_id": int(job_id),
                "slurm_state": state["JobState"],
                "slurm_wait_s": int((started - submitted).total_seconds()),
                "slurm_run_time_s": run_time_s(state["RunTime"]),
                "aiida_wall_s": round((job.mtime - job.ctime).total_seconds(), 1),
                "exit_status": job.exit_status,
            }
        )
    RESULTS["jobs"].extend(rows)
    return rows


class Canceller(threading.Thread):
    """Cancel (``scancel``) the first ``aiida-*`` Slurm job that has run for ``after_s`` seconds."""

    def __init__(self, after_s: float, timeout_s: float = 240):
        super().__init__(daemon=True)
        self.after_s, self.timeout_s = after_s, timeout_s
        self.job_id: str | None = None
        self.running_for_s: float | None = None

    def run(self):
        deadline = time.monotonic() + self.timeout_s
        first_seen = {}
        while time.monotonic() < deadline:
            listing = subprocess.run(
                ["squeue", "-h", "-o", "%i|%T|%j"], capture_output=True, text=True, check=False
            ).stdout
            for line in listing.split():
                job_id, state, name = line.split("|")
                if state != "RUNNING" or not name.startswith("aiida-"):
                    continue
                first_seen.setdefault(job_id, time.monotonic())
                if time.monotonic() - first_seen[job_id] >= self.after_s:
                    subprocess.run(["scancel", job_id], check=True)
                    self.job_id, self.running_for_s = job_id, round(time.monotonic() - first_seen[job_id], 1)
                    return
            time.sleep(0.1)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The one-node cluster and sshd, started here and stopped at the end of the module."""
    if os.geteuid() != 0:
        pytest.skip("the local Slurm cluster needs root (its daemons run as root)")
    if slurm_module.SLURM_CONF_PATH.exists() and not slurm_module.SLURM_CONF_PATH.read_text().startswith(
        slurm_module.CONF_MARKER
    ):
        pytest.skip("this machine has its own Slurm configuration; not touching it")
    local = slurm_module.LocalSlurmCluster(state_dir=tmp_path_factory.mktemp("slurm"))
    try:
        local.start(install=True)
    except (slurm_module.SlurmUnavailable, subprocess.SubprocessError, OSError) as exception:
        local.stop()
        pytest.skip(f"cannot run a local Slurm cluster here: {exception}")
    yield local
    local.stop()


@pytest.fixture(scope="module")
def slurm_codes(cluster, tmp_path_factory):
    report = provision.ProvisionReport()
    spec = slurm_module.local_slurm_spec(
        tmp_path_factory.mktemp("slurm-work"), key_file=cluster.key_file, port=cluster.ssh_port
    )
    computer = slurm_module.ensure_slurm_computer(spec, report)
    version = slurm_module.check_connection(computer)
    RESULTS["cluster"] = {
        "slurm_version": version.split()[-1],
        "partition": cluster.partition,
        "cpus": cluster.cpus,
        "transport": computer.transport_type,
        "scheduler": computer.scheduler_type,
        "computer": computer.label,
    }
    codes = slurm_module.ensure_slurm_codes(
        computer, pw_executable=shutil.which("pw.x") or "/usr/bin/pw.x", neb_executable=None, report=report
    )
    assert [row[2] for row in report.lines] == ["created"] * 3
    return codes


@pytest.fixture(scope="module")
def chgnet(aiida_profile):
    return provision.ensure_registry_models(["chgnet-0.3.0"])["chgnet-0.3.0"]


@pytest.fixture(scope="module")
def h2_structures(aiida_profile):
    """Two frames of the H2 bond scan (2 atoms, 8 Å box), stored once: both computers label the same nodes."""
    structures = {}
    for atoms in get_system("h2-dissociation").configurations[2:4]:
        structure = orm.StructureData(ase=atoms)
        structure.base.extras.set_many(
            {k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float))}
        )
        structures[link_label(atoms.info["name"])] = structure.store()
    return structures


def label(structures, pw_code, pseudo_family):
    return run_get_node(
        LabelWorkChain,
        structures=structures,
        pw_code=pw_code,
        pseudo_family=orm.Str(pseudo_family.label),
        protocol=orm.Str("fast"),
        options=orm.Dict(SERIAL_PW),
    )[1]


@pytest.fixture(scope="module")
def labels(h2_structures, codes, slurm_codes, pseudo_family):
    """The LabelWorkChain of the two frames on localhost and on the cluster."""
    return {
        "localhost": label(h2_structures, codes["pw"], pseudo_family),
        "slurm": label(h2_structures, slurm_codes["pw"], pseudo_family),
    }


# --------------------------------------------------------------------------------------------------- tests
def test_label_through_slurm_equals_localhost(labels, slurm_codes):
    local, remote = labels["localhost"], labels["slurm"]
    assert local.is_finished_ok, failure_reason(local)
    assert remote.is_finished_ok, failure_reason(remote)
    rows = record_jobs("label (pw.x)", remote, slurm_codes["pw"].computer)
    assert [row["process"] for row in rows] == ["PwCalculation"] * 2
    assert {row["slurm_state"] for row in rows} == {"COMPLETED"} and {row["exit_status"] for row in rows} == {
        0
    }
    assert len({row["job_id"] for row in rows}) == 2
    local_energies = local.outputs.dataset.frames.energies
    slurm_energies = remote.outputs.dataset.frames.energies
    assert len(slurm_energies) == 2 and np.all(slurm_energies < -25)  # eV: H2 near -31 eV with these pseudos
    np.testing.assert_allclose(slurm_energies, local_energies, rtol=0, atol=1e-6)
    RESULTS["comparisons"].append(
        {
            "quantity": "pw.x total energy (eV)",
            "frames": 2,
            "localhost": [round(float(e), 6) for e in local_energies],
            "slurm": [round(float(e), 6) for e in slurm_energies],
            "max_abs_difference": float(np.max(np.abs(slurm_energies - local_energies))),
            "uuids": {"localhost": local.uuid, "slurm": remote.uuid},
        }
    )


def test_benchmark_through_slurm_equals_localhost(labels, chgnet, codes, slurm_codes):
    dataset = labels["slurm"].outputs.dataset
    nodes = {
        where: run_get_node(
            BenchmarkWorkChain, dataset=dataset, models={"chgnet": chgnet}, runner_code=code_set["runner"]
        )[1]
        for where, code_set in (("localhost", codes), ("slurm", slurm_codes))
    }
    for node in nodes.values():
        assert node.is_finished_ok, failure_reason(node)
    rows = record_jobs("benchmark (CHGNet 0.3.0 evaluate)", nodes["slurm"], slurm_codes["runner"].computer)
    assert [(row["process"], row["slurm_state"], row["exit_status"]) for row in rows] == [
        ("EvaluateCalculation", "COMPLETED", 0)
    ]
    energies = {where: node.outputs.predictions.chgnet.get_array("energies") for where, node in nodes.items()}
    np.testing.assert_allclose(energies["slurm"], energies["localhost"], rtol=0, atol=1e-5)
    metrics = {where: node.outputs.metrics.chgnet.get_dict() for where, node in nodes.items()}
    assert metrics["slurm"].keys() == metrics["localhost"].keys()
    RESULTS["comparisons"].append(
        {
            "quantity": "CHGNet 0.3.0 energy (eV)",
            "frames": len(energies["slurm"]),
            "localhost": [round(float(e), 5) for e in energies["localhost"]],
            "slurm": [round(float(e), 5) for e in energies["slurm"]],
            "max_abs_difference": float(np.max(np.abs(energies["slurm"] - energies["localhost"]))),
            "uuids": {where: node.uuid for where, node in nodes.items()},
        }
    )
    RESULTS["chgnet_energies"] = energies["localhost"].tolist()


def test_finetune_through_slurm_equals_localhost(labels, chgnet, codes, slurm_codes):
    dataset = labels["slurm"].outputs.dataset
    nodes = {
        where: run_get_node(
            FinetuneBaseWorkChain,
            finetune={
                "code": code_set["runner"],
                "base_model": chgnet,
                "training": dataset,
                "parameters": orm.Dict(FINETUNE),
            },
        )[1]
        for where, code_set in (("localhost", codes), ("slurm", slurm_codes))
    }
    for node in nodes.values():
        assert node.is_finished_ok, failure_reason(node)
    rows = record_jobs("fine-tune (CHGNet, 2 epochs)", nodes["slurm"], slurm_codes["runner"].computer)
    assert [(row["process"], row["slurm_state"], row["exit_status"]) for row in rows] == [
        ("FinetuneCalculation", "COMPLETED", 0)
    ]
    losses = {where: node.outputs.history.get_array("train_loss") for where, node in nodes.items()}
    assert len(losses["slurm"]) == FINETUNE["epochs"] and np.all(np.isfinite(losses["slurm"]))
    np.testing.assert_allclose(losses["slurm"], losses["localhost"], rtol=1e-4)
    model = nodes["slurm"].outputs.model
    assert model.base_model_uuid == chgnet.uuid and model.sha256 != chgnet.sha256
    RESULTS["comparisons"].append(
        {
            "quantity": "fine-tune train loss per epoch",
            "frames": 2,
            "localhost": [float(f"{x:.6g}") for x in losses["localhost"]],
            "slurm": [float(f"{x:.6g}") for x in losses["slurm"]],
            "max_abs_difference": float(f"{np.max(np.abs(losses['slurm'] - losses['localhost'])):.3g}"),
            "uuids": {where: node.uuid for where, node in nodes.items()},
        }
    )


def run_and_cancel(after_s: float, process, **inputs):
    """Run ``process`` in this interpreter while a thread scancels its first Slurm job after ``after_s`` s."""
    canceller = Canceller(after_s)
    canceller.start()
    node = run_get_node(process, **inputs)[1]
    canceller.join(timeout=1)
    assert canceller.job_id is not None, "no Slurm job was seen running to cancel"
    return node, canceller


def scancel_row(workchain: str, node, canceller, computer, result_vs_reference: str) -> dict:
    jobs = slurm_jobs(node)
    rows = record_jobs(f"{workchain} (scancel, then retried)", node, computer)
    assert rows[0]["job_id"] == int(canceller.job_id) and rows[0]["slurm_state"] == "CANCELLED"
    assert rows[-1]["slurm_state"] == "COMPLETED" and rows[-1]["job_id"] != rows[0]["job_id"]
    return {
        "workchain": workchain,
        "uuid": node.uuid,
        "cancelled_job_id": int(canceller.job_id),
        "cancelled_after_running_s": canceller.running_for_s,
        "cancelled_exit_status": jobs[0].exit_status,
        "cancelled_exit_message": jobs[0].exit_message,
        "retry_job_id": rows[-1]["job_id"],
        "retry_exit_status": jobs[-1].exit_status,
        "workchain_exit_status": node.exit_status,
        "result_vs_reference": result_vs_reference,
    }


def test_scancel_of_an_evaluate_job_is_retried(labels, chgnet, slurm_codes):
    """The runner killed by scancel writes no outputs: ERROR_MISSING_OUTPUT, which the restart layer treats as
    a killed job and submits again, unchanged; the retry gives the same energies as an uncancelled run."""
    dataset = labels["slurm"].outputs.dataset
    node, canceller = run_and_cancel(
        1.0,
        EvaluateBaseWorkChain,
        evaluate={"code": slurm_codes["runner"], "model": chgnet, "dataset": dataset},
    )
    assert node.is_finished_ok, failure_reason(node)
    jobs = slurm_jobs(node)
    assert len(jobs) == 2
    missing = EvaluateBaseWorkChain._process_class.exit_codes.ERROR_MISSING_OUTPUT.status
    assert jobs[0].exit_status == missing and jobs[1].exit_status == 0
    assert jobs[1].inputs.dataset.uuid == jobs[0].inputs.dataset.uuid == dataset.uuid
    energies = node.outputs.predictions.get_array("energies")
    reference = np.array(RESULTS.get("chgnet_energies", energies))
    np.testing.assert_allclose(energies, reference, rtol=0, atol=1e-5)
    RESULTS["scancel"].append(
        scancel_row(
            "EvaluateBaseWorkChain",
            node,
            canceller,
            slurm_codes["runner"].computer,
            f"same energies (max diff {np.max(np.abs(energies - reference)):.1e} eV)",
        )
    )


def test_scancel_of_a_pwx_job_is_retried(labels, h2_structures, slurm_codes, pseudo_family):
    """pw.x killed by scancel: aiida-quantumespresso's parser fails the PwCalculation; PwBaseWorkChain (a
    BaseRestartWorkChain) restarts an unhandled failure once and the label equals the uncancelled one."""
    key = min(h2_structures)
    node, canceller = run_and_cancel(
        0.5,
        LabelWorkChain,
        structures={key: h2_structures[key]},
        pw_code=slurm_codes["pw"],
        pseudo_family=orm.Str(pseudo_family.label),
        protocol=orm.Str("fast"),
        options=orm.Dict(SERIAL_PW),
    )
    assert node.is_finished_ok, failure_reason(node)
    jobs = slurm_jobs(node)
    assert len(jobs) == 2 and jobs[0].exit_status not in (0, None) and jobs[1].exit_status == 0
    energy = node.outputs.dataset.frames.energies[0]
    reference = labels["slurm"].outputs.dataset.frames.energies[sorted(h2_structures).index(key)]
    assert abs(energy - reference) < 1e-6
    RESULTS["scancel"].append(
        scancel_row(
            "PwBaseWorkChain (in reactmlip.label)",
            node,
            canceller,
            slurm_codes["pw"].computer,
            f"same energy (diff {abs(energy - reference):.1e} eV)",
        )
    )


def test_setup_command_makes_a_working_slurm_computer(cluster, tmp_path):
    """`reactmlip setup --computer-slurm localhost` on a fresh AIIDA_PATH: computer, codes, a login that runs
    squeue over SSH; a second run finds everything."""
    command = [
        str(pathlib.Path(sys.executable).parent / "reactmlip"),
        "setup",
        "--profile-name",
        "fresh",
        "--models",
        "",
        "--computer-slurm",
        "localhost",
        "--ssh-user",
        "root",
        "--ssh-key",
        str(cluster.key_file),
        "--trust-host-key",
    ]
    env = {**os.environ, "AIIDA_PATH": str(tmp_path), "COLUMNS": "200"}
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    for line in (
        "slurm-localhost (root@localhost, core.ssh + core.slurm)",
        "pw@slurm-localhost",
        "neb@slurm-localhost",
        "reactmlip-runner@slurm-localhost",
        "root@localhost: slurm",
    ):
        assert line in first.stdout
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0 and "created" not in second.stdout, second.stdout


@pytest.fixture(scope="module", autouse=True)
def write_results_when_asked():
    """With REACTMLIP_WRITE_SLURM_RESULTS=1, after the module's tests: docs/results/reliability-slurm.json and the
    docs block, from what the tests measured. A fixture, not a test: a normal run has nothing to skip."""
    yield
    if os.environ.get("REACTMLIP_WRITE_SLURM_RESULTS") != "1":
        return
    from aiida_reactmlip.report.docs_blocks import provenance

    if not (RESULTS["comparisons"] and RESULTS["scancel"]):
        pytest.fail("REACTMLIP_WRITE_SLURM_RESULTS=1 needs the whole module to run: nothing written")
    data = {
        "provenance": provenance(slurm_results.COMMAND),
        **{k: v for k, v in RESULTS.items() if k != "chgnet_energies"},
    }
    slurm_results.write(data)
    assert slurm_results.render(slurm_results.load()) in slurm_results.PAGE.read_text()
