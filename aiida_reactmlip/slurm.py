"""A real scheduler for the CalcJobs: a one-node Slurm cluster on this machine reached over SSH, and the AiiDA
computer (``core.ssh`` + ``core.slurm``) and codes of any Slurm cluster.

Two halves:

- The local cluster (tests, demos, trying the cluster path without a cluster): :func:`slurm_conf` writes the
  configuration of one node, :class:`LocalSlurmCluster` starts ``munged``, ``slurmctld``, ``slurmd`` and an
  ``sshd`` on localhost (installing Debian's packages when asked) and stops what it started. Root only; it
  needs neither systemd nor cgroups. ``python -m aiida_reactmlip.slurm start|stop|status`` does it by hand.
- The AiiDA side, for a real cluster as much as for the local one: :func:`ensure_slurm_computer` creates and
  configures a computer that submits with ``sbatch`` over SSH, and :func:`ensure_slurm_codes` the pw.x, neb.x
  and runner codes on it (executables given as paths on the cluster). ``reactmlip setup --computer-slurm``
  calls both.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
import typing as t

from aiida_reactmlip import provision

#: Debian packages of a one-node cluster reached over SSH.
SLURM_PACKAGES = ("slurmctld", "slurmd", "munge", "slurm-client", "openssh-server")
#: Where the Slurm client commands (sbatch, squeue, scancel run over SSH) read the configuration.
SLURM_CONF_PATH = pathlib.Path("/etc/slurm/slurm.conf")
#: First line of a slurm.conf written here: only such a file is ever overwritten.
CONF_MARKER = "# written by aiida_reactmlip.slurm (a one-node local cluster)"
#: Label of the local cluster's computer in AiiDA.
LOCAL_SLURM_COMPUTER = "slurm-localhost"
#: Private key (no passphrase) that the local computer logs in with; its public half goes to authorized_keys.
LOCAL_SSH_KEY = pathlib.Path.home() / ".ssh" / "id_reactmlip_slurm"
#: Memory (MB) left to the operating system when the node's RealMemory is derived from the free memory.
RESERVED_MEMORY_MB = 1024
#: The description of computers created here (only those are reconfigured).
SLURM_COMPUTER_DESCRIPTION = "Slurm over SSH (created by reactmlip setup --computer-slurm)"


def slurm_conf(
    state_dir: pathlib.Path,
    node_name: str,
    cpus: int,
    memory_mb: int,
    partition: str = "debug",
    cluster_name: str = "reactmlip",
) -> str:
    """The text of a slurm.conf for one node ``node_name`` (``cpus`` cores, ``memory_mb`` MB) that is also the
    controller; state, spool, logs and pid files under ``state_dir``. Daemons and jobs run as root; no
    accounting (``sacct`` does not work: use ``scontrol show job``, which keeps a finished job 3600 s)."""
    state_dir = pathlib.Path(state_dir)
    return "\n".join(
        [
            CONF_MARKER,
            f"ClusterName={cluster_name}",
            f"SlurmctldHost={node_name}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"StateSaveLocation={state_dir / 'state'}",
            f"SlurmdSpoolDir={state_dir / 'spool'}",
            f"SlurmctldPidFile={state_dir / 'slurmctld.pid'}",
            f"SlurmdPidFile={state_dir / 'slurmd.pid'}",
            f"SlurmctldLogFile={state_dir / 'slurmctld.log'}",
            f"SlurmdLogFile={state_dir / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "ReturnToService=2",
            "MinJobAge=3600",
            "SchedulerType=sched/backfill",
            f"NodeName={node_name} CPUs={int(cpus)} RealMemory={int(memory_mb)} State=UNKNOWN",
            f"PartitionName={partition} Nodes={node_name} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def free_memory_mb() -> int:
    """Available memory of this machine in MB (``/proc/meminfo``'s MemAvailable)."""
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("MemAvailable missing from /proc/meminfo")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _read_pid(path: pathlib.Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _pid_alive(pid) else None


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on ``host:port`` (TCP)."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class SlurmUnavailable(RuntimeError):
    """The local cluster cannot be started here (not root, packages missing and not installable, ...)."""


@dataclasses.dataclass
class LocalSlurmCluster:
    """A one-node Slurm cluster and an sshd on this machine; :meth:`stop` ends only the daemons :meth:`start`
    started (pids in ``started``). Root only."""

    state_dir: pathlib.Path
    partition: str = "debug"
    cpus: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    ssh_port: int = 22
    key_file: pathlib.Path = LOCAL_SSH_KEY
    started: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def node_name(self) -> str:
        return socket.gethostname().split(".")[0]

    # -- installation ---------------------------------------------------------------------------------------
    @staticmethod
    def missing_executables() -> list[str]:
        """The daemons and client commands not on this machine."""
        needed = (
            "munged",
            "slurmctld",
            "slurmd",
            "sbatch",
            "squeue",
            "scancel",
            "scontrol",
            "sshd",
            "ssh-keygen",
        )
        search = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
        return [name for name in needed if shutil.which(name, path=search) is None]

    def install(self, timeout_s: float = 300) -> None:
        """``apt-get install`` Debian's Slurm, munge and openssh-server when a command is missing."""
        if not self.missing_executables():
            return
        if os.geteuid() != 0:
            raise SlurmUnavailable(
                "installing Slurm needs root: run as root or `apt-get install "
                + " ".join(SLURM_PACKAGES)
                + "` first"
            )
        if shutil.which("apt-get") is None:
            raise SlurmUnavailable(
                "no apt-get here: install Slurm (slurmctld, slurmd, munge, clients) and sshd"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(
            ["apt-get", "install", "-y", "-q", *SLURM_PACKAGES],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if result.returncode != 0 or self.missing_executables():
            raise SlurmUnavailable(
                f"apt-get install {' '.join(SLURM_PACKAGES)} failed: "
                f"{(result.stderr or result.stdout).strip()[-400:]}"
            )

    # -- start and stop -------------------------------------------------------------------------------------
    def write_conf(self) -> None:
        """Write /etc/slurm/slurm.conf (refusing to replace one this module did not write)."""
        if SLURM_CONF_PATH.exists() and not SLURM_CONF_PATH.read_text().startswith(CONF_MARKER):
            raise SlurmUnavailable(
                f"{SLURM_CONF_PATH} exists and was not written by aiida_reactmlip: "
                "this machine has its own Slurm; point `reactmlip setup --computer-slurm` at it"
            )
        for sub in ("state", "spool"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        memory = max(256, free_memory_mb() - RESERVED_MEMORY_MB)
        SLURM_CONF_PATH.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF_PATH.write_text(
            slurm_conf(self.state_dir, self.node_name, self.cpus, memory, self.partition)
        )

    def _spawn(self, name: str, command: list[str], pid_file: pathlib.Path | None = None) -> None:
        """Run a daemon that forks into the background; record its pid (from ``pid_file``) as started here."""
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)
        if pid_file is not None:
            for _ in range(50):
                pid = _read_pid(pid_file)
                if pid:
                    self.started[name] = pid
                    return
                time.sleep(0.1)
            raise SlurmUnavailable(
                f"{name} did not start (no pid in {pid_file}); see its log in {self.state_dir}"
            )

    def start_munge(self) -> None:
        pid_file = pathlib.Path("/run/munge/munged.pid")
        if _read_pid(pid_file):
            return
        run_dir = pathlib.Path("/run/munge")
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(run_dir, "munge", "munge")
        self._spawn("munged", ["runuser", "-u", "munge", "--", "munged"], pid_file)

    def start_slurm(self, timeout_s: float = 60) -> None:
        """Start slurmctld (clean state) and slurmd unless running; wait until the node is idle."""
        if not _read_pid(self.state_dir / "slurmctld.pid"):
            self._spawn("slurmctld", ["slurmctld", "-c"], self.state_dir / "slurmctld.pid")
        if not _read_pid(self.state_dir / "slurmd.pid"):
            self._spawn("slurmd", ["slurmd"], self.state_dir / "slurmd.pid")
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, check=False)
            state = result.stdout.strip()
            if state in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.5)
        raise SlurmUnavailable(
            f"the Slurm node did not become idle within {timeout_s:.0f} s (sinfo says "
            f"{state!r}); see {self.state_dir}/slurmctld.log and slurmd.log"
        )

    def authorize_key(self) -> None:
        """Create the key pair (no passphrase) if missing; add its public half to root's authorized_keys."""
        key = pathlib.Path(self.key_file)
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "reactmlip-slurm", "-f", str(key)],
                check=True,
                capture_output=True,
            )
        public = pathlib.Path(f"{key}.pub").read_text().strip()
        authorized = key.parent / "authorized_keys"
        lines = authorized.read_text().splitlines() if authorized.exists() else []
        if public not in lines:
            authorized.write_text("\n".join([*lines, public]) + "\n")
        authorized.chmod(0o600)

    def start_sshd(self) -> None:
        """Start an sshd on ``ssh_port`` unless something listens there already."""
        if port_open(self.ssh_port):
            return
        subprocess.run(["ssh-keygen", "-A"], check=True, capture_output=True)
        pathlib.Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        pid_file = self.state_dir / "sshd.pid"
        self._spawn(
            "sshd", ["/usr/sbin/sshd", "-p", str(self.ssh_port), "-o", f"PidFile={pid_file}"], pid_file
        )
        for _ in range(50):
            if port_open(self.ssh_port):
                return
            time.sleep(0.1)
        raise SlurmUnavailable(f"sshd did not listen on port {self.ssh_port}")

    def start(self, install: bool = True) -> LocalSlurmCluster:
        """Everything, in order: packages, slurm.conf, munged, slurmctld + slurmd, key, sshd."""
        if os.geteuid() != 0:
            raise SlurmUnavailable("the local Slurm cluster runs its daemons as root: run as root")
        if install:
            self.install()
        elif self.missing_executables():
            raise SlurmUnavailable(
                f"missing: {', '.join(self.missing_executables())}; "
                f"apt-get install {' '.join(SLURM_PACKAGES)}"
            )
        self.state_dir = pathlib.Path(self.state_dir)
        self.write_conf()
        self.start_munge()
        self.start_slurm()
        self.authorize_key()
        self.start_sshd()
        return self

    def stop(self) -> list[str]:
        """SIGTERM the daemons :meth:`start` started (slurmd, slurmctld, sshd, munged); return their names."""
        stopped = []
        for name in ("slurmd", "slurmctld", "sshd", "munged"):
            pid = self.started.pop(name, None)
            if pid and _pid_alive(pid):
                os.kill(pid, signal.SIGTERM)
                for _ in range(50):
                    if not _pid_alive(pid):
                        break
                    time.sleep(0.1)
                stopped.append(name)
        return stopped


def scheduler_job_state(job_id: str | int) -> dict[str, str]:
    """``scontrol show job ID`` as a dict (JobState, RunTime, NodeList, ...); empty once Slurm forgot it."""
    result = subprocess.run(
        ["scontrol", "-o", "show", "job", str(job_id)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return {}
    fields = {}
    for token in result.stdout.split():
        key, _, value = token.partition("=")
        fields[key] = value
    return fields


# -- the AiiDA side: a computer and codes on any Slurm cluster reached over SSH ----------------------------
@dataclasses.dataclass
class SlurmComputerSpec:
    """What a Slurm computer needs: where to log in, where to work, how to start MPI.

    ``safe_interval`` (s) is the least time between two SSH connections (a cluster's login node may ban a
    client that connects too often; 0 for localhost); ``poll_interval`` (s) how often squeue is asked.
    """

    label: str
    hostname: str
    username: str
    key_filename: str
    workdir: str
    partition: str | None = None
    port: int = 22
    mpiprocs_per_machine: int = 1
    mpirun_command: tuple[str, ...] = ("mpirun", "-np", "{tot_num_mpiprocs}")
    prepend_text: str = provision.MPI_PREPEND_TEXT
    safe_interval: float = 5.0
    poll_interval: float = 10.0
    use_login_shell: bool = True
    key_policy: str = "RejectPolicy"


def local_slurm_spec(
    workdir: pathlib.Path,
    key_file: pathlib.Path = LOCAL_SSH_KEY,
    port: int = 22,
    label: str = LOCAL_SLURM_COMPUTER,
) -> SlurmComputerSpec:
    """The computer of :class:`LocalSlurmCluster`: root@localhost, no wait between connections, squeue polled
    every second, no login shell (the codes are absolute paths), the host key accepted on first use."""
    return SlurmComputerSpec(
        label=label,
        hostname="localhost",
        username="root",
        key_filename=str(key_file),
        workdir=str(workdir),
        port=port,
        mpiprocs_per_machine=os.cpu_count() or 1,
        safe_interval=0.0,
        poll_interval=1.0,
        use_login_shell=False,
        key_policy="AutoAddPolicy",
    )


def ensure_slurm_computer(spec: SlurmComputerSpec, report: provision.ProvisionReport | None = None):
    """Return the ``core.ssh`` + ``core.slurm`` computer ``spec.label``; create and configure it if missing.

    An existing computer of that label is used as it is (its hostname must match ``spec.hostname``).
    The partition, when given, is stored as the computer property ``reactmlip_partition`` (AiiDA computers
    have no default queue: pass it to jobs as ``metadata.options.queue_name``).
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        computer = orm.load_computer(spec.label)
        if computer.hostname != spec.hostname:
            raise ValueError(
                f"computer {spec.label!r} exists with hostname {computer.hostname!r}, not "
                f"{spec.hostname!r}: choose another label (--computer-label)"
            )
        state = "exists"
    except NotExistent:
        computer = orm.Computer(
            label=spec.label,
            hostname=spec.hostname,
            description=SLURM_COMPUTER_DESCRIPTION,
            transport_type="core.ssh",
            scheduler_type="core.slurm",
            workdir=spec.workdir,
        ).store()
        computer.set_mpirun_command(list(spec.mpirun_command))
        computer.set_default_mpiprocs_per_machine(int(spec.mpiprocs_per_machine))
        computer.set_prepend_text(spec.prepend_text)
        computer.set_minimum_job_poll_interval(float(spec.poll_interval))
        if spec.partition:
            computer.set_property("reactmlip_partition", spec.partition)
        state = "created"
    if not computer.is_configured:
        computer.configure(
            username=spec.username,
            port=int(spec.port),
            key_filename=spec.key_filename,
            look_for_keys=False,
            allow_agent=False,
            key_policy=spec.key_policy,
            load_system_host_keys=True,
            safe_interval=float(spec.safe_interval),
            use_login_shell=bool(spec.use_login_shell),
            timeout=60,
        )
        state = "configured" if state == "exists" else state
    if report is not None:
        report.add(
            "computer", f"{spec.label} ({spec.username}@{spec.hostname}, core.ssh + core.slurm)", state
        )
    return computer


def check_connection(computer) -> str:
    """Open the transport and run ``squeue --version`` on the cluster; return its answer.

    Raises ``RuntimeError`` with what to do when the login or the Slurm command fails.
    """
    try:
        with computer.get_transport() as transport:
            retval, stdout, stderr = transport.exec_command_wait("squeue --version")
    except Exception as exception:  # paramiko raises many kinds; the user needs the message, not the class
        raise RuntimeError(
            f"cannot log in to {computer.hostname} as configured for computer {computer.label!r}: "
            f"{exception}. Check the user, key file and known_hosts "
            f"(`verdi computer test {computer.label}`)."
        ) from exception
    if retval != 0:
        raise RuntimeError(
            f"`squeue --version` failed on {computer.hostname} (exit {retval}): {stderr.strip()}; "
            "is Slurm on the login node's PATH? (a login shell may be needed)"
        )
    return stdout.strip()


def ensure_slurm_codes(
    computer,
    pw_executable: str = "/usr/bin/pw.x",
    neb_executable: str | None = "/usr/bin/neb.x",
    runner_executable: str | None = None,
    report: provision.ProvisionReport | None = None,
) -> dict[str, t.Any]:
    """The codes ``pw``, ``neb`` and ``reactmlip-runner`` on ``computer``, created when missing, with the same
    labels, plugins and prepend texts as the localhost codes. Executables are paths on the cluster (not
    checked here: ``verdi code test`` does); the runner defaults to this environment's (local cluster)."""
    runner = runner_executable or str(provision.runner_executable())
    codes = {
        "pw": provision.ensure_installed_code(
            provision.PW_CODE_LABEL,
            pw_executable,
            "quantumespresso.pw",
            computer,
            "Quantum ESPRESSO pw.x",
            prepend_text=provision.QE_PREPEND_TEXT,
            report=report,
            check_exists=False,
        ),
        "runner": provision.ensure_installed_code(
            provision.RUNNER_CODE_LABEL,
            runner,
            "reactmlip.evaluate",
            computer,
            "aiida-reactmlip MLIP runner (evaluate, relax, md, neb, finetune)",
            report=report,
            check_exists=False,
        ),
    }
    if neb_executable:
        codes["neb"] = provision.ensure_installed_code(
            provision.NEB_CODE_LABEL,
            neb_executable,
            "quantumespresso.neb",
            computer,
            "Quantum ESPRESSO neb.x",
            prepend_text=provision.QE_PREPEND_TEXT,
            report=report,
            check_exists=False,
        )
    return codes


def main(argv: list[str] | None = None) -> int:
    """``python -m aiida_reactmlip.slurm start|stop|status [STATE_DIR]``: the local one-node cluster by hand.

    ``start`` leaves the daemons running; ``stop`` ends those whose pid files are in STATE_DIR, and munged.
    """
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("start", "stop", "status"):
        print(
            "usage: python -m aiida_reactmlip.slurm start|stop|status [STATE_DIR] "
            "(default /var/tmp/reactmlip-slurm)"
        )
        return 2
    state_dir = pathlib.Path(args[1] if len(args) > 1 else "/var/tmp/reactmlip-slurm")
    cluster = LocalSlurmCluster(state_dir=state_dir)
    if args[0] == "start":
        try:
            cluster.start()
        except (SlurmUnavailable, subprocess.CalledProcessError) as exception:
            print(f"error: {exception}")
            return 1
        print(
            f"Slurm node {cluster.node_name} idle, partition {cluster.partition}; "
            f"sshd on port {cluster.ssh_port}; "
            f"key {cluster.key_file}. Next: reactmlip setup --computer-slurm localhost --ssh-user root "
            f"--ssh-key {cluster.key_file} --trust-host-key"
        )
        return 0
    if args[0] == "stop":
        pid_files = {name: state_dir / f"{name}.pid" for name in ("slurmd", "slurmctld", "sshd")}
        for name, pid_file in {**pid_files, "munged": pathlib.Path("/run/munge/munged.pid")}.items():
            pid = _read_pid(pid_file)
            if pid:
                cluster.started[name] = pid
        print("stopped: " + (", ".join(cluster.stop()) or "nothing (no daemon of this state directory runs)"))
        return 0
    result = subprocess.run(["sinfo", "-h", "-o", "%P %T %D"], capture_output=True, text=True, check=False)
    print(result.stdout.strip() or result.stderr.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
