"""``reactmlip setup`` and ``reactmlip status``."""

from __future__ import annotations

import click

from .root import cmd_root, load_profile_or_fail

DEMO_MODELS = ("chgnet-0.3.0", "sevennet-0")


@cmd_root.command("setup")
@click.option("--profile-name", default="reactmlip", show_default=True,
              help="Profile to create (core.sqlite_dos storage, no broker). An existing one is used as it is.")
@click.option("--models", "model_names", default=",".join(DEMO_MODELS), show_default=True,
              help="Comma-separated registry models whose bundled weights to store as MlipModelData nodes.")
@click.option("--computer-slurm", "slurm_host", default=None, metavar="HOST",
              help="Also set up a Slurm cluster reached over SSH at HOST (login node): computer core.ssh + "
              "core.slurm and the codes pw, neb, reactmlip-runner on it.")
@click.option("--ssh-user", default=None, help="User on HOST [default: your user name here].")
@click.option("--ssh-key", type=click.Path(dir_okay=False), default=None,
              help="Private key file to log in with [default: ~/.ssh/id_ed25519, else ~/.ssh/id_rsa].")
@click.option("--ssh-port", type=int, default=22, show_default=True)
@click.option("--trust-host-key", is_flag=True,
              help="Accept HOST's key on first connection (else HOST must be in ~/.ssh/known_hosts).")
@click.option("--partition", default=None,
              help="Slurm partition, stored on the computer as property reactmlip_partition [default: the "
              "cluster's default partition].")
@click.option("--workdir", default=None,
              help="Job directories on the cluster, on a file system the compute nodes see; {username} is "
              "replaced [default for localhost: the profile's scratch-slurm/{username}; required otherwise].")
@click.option("--computer-label", default=None, help="Label of the computer [default: slurm-HOST].")
@click.option("--pw-executable", default="/usr/bin/pw.x", show_default=True, help="pw.x on the cluster.")
@click.option("--neb-executable", default="/usr/bin/neb.x", show_default=True,
              help="neb.x on the cluster ('' for none).")
@click.option("--runner-executable", default=None,
              help="reactmlip-runner on the cluster (`pip install aiida-reactmlip` there) [default for "
              "localhost: this environment's; required otherwise].")
@click.option("--mpiprocs-per-machine", type=int, default=None,
              help="Default MPI ranks per node [default: this machine's cores for localhost, else 1].")
@click.option("--no-check", is_flag=True, help="Do not log in to run `squeue --version` after the set-up.")
def cmd_setup(profile_name, model_names, slurm_host, ssh_user, ssh_key, ssh_port, trust_host_key, partition,
              workdir, computer_label, pw_executable, neb_executable, runner_executable, mpiprocs_per_machine,
              no_check):
    """Create what a fresh machine needs; safe to run again (only what is missing is created).

    \b
    * an AiiDA profile on core.sqlite_dos with no broker (processes run in-process)
    * the `localhost` computer (core.local + core.direct, mpirun allowed as root)
    * codes pw@localhost, neb@localhost (Debian's Quantum ESPRESSO) and reactmlip-runner@localhost
    * the pseudopotential family reactmlip/debian-pbe from Debian's quantum-espresso-data,
      with the cutoffs each file suggests
    * the bundled weights of the requested models, stored once (deduplicated by sha256)

    With --computer-slurm HOST, also a computer `slurm-HOST` (core.ssh + core.slurm; mpirun allowed as root)
    and the codes pw, neb and reactmlip-runner on it, then a login that runs `squeue --version`.

    Examples: reactmlip setup --models chgnet-0.3.0,sevennet-0,chgnet-0.2.0

    \b
      reactmlip setup --computer-slurm login.cluster.org --ssh-user me --ssh-key ~/.ssh/id_ed25519 \\
        --partition normal --workdir /scratch/{username}/aiida \\
        --pw-executable /opt/qe/7.2/bin/pw.x --runner-executable /home/me/venv/bin/reactmlip-runner
    """
    from rich.console import Console
    from rich.table import Table

    from aiida_reactmlip.provision import provision

    names = [name.strip() for name in model_names.split(",") if name.strip()]
    report = provision(profile_name, models=names)
    if slurm_host:
        setup_slurm_computer(report, slurm_host, ssh_user, ssh_key, ssh_port, trust_host_key, partition,
                             workdir, computer_label, pw_executable, neb_executable, runner_executable,
                             mpiprocs_per_machine, check=not no_check)
    table = Table(title=f"reactmlip setup (profile {profile_name})")
    for column in ("what", "label", "state"):
        table.add_column(column)
    for row in report.lines:
        table.add_row(*row)
    Console().print(table)


def default_ssh_key() -> str:
    """~/.ssh/id_ed25519 when it exists, else ~/.ssh/id_rsa."""
    import pathlib

    ssh = pathlib.Path.home() / ".ssh"
    return str(next((ssh / n for n in ("id_ed25519", "id_rsa") if (ssh / n).exists()), ssh / "id_rsa"))


def setup_slurm_computer(report, host, user, key, port, trust_host_key, partition, workdir, label,
                         pw_executable, neb_executable, runner_executable, mpiprocs_per_machine,
                         check=True) -> None:
    """The Slurm computer and its codes (``reactmlip setup --help``); a clear error when one is missing."""
    import getpass
    import os
    import pathlib

    from aiida.manage.configuration import get_config

    from aiida_reactmlip import slurm

    local = host in ("localhost", "127.0.0.1")
    key = os.path.expanduser(key or default_ssh_key())
    if not pathlib.Path(key).exists():
        raise click.ClickException(f"SSH key file {key} not found: give --ssh-key, or create one with "
                                   f"`ssh-keygen -t ed25519` and add its .pub to ~/.ssh/authorized_keys "
                                   f"on {host}")
    if workdir is None and not local:
        raise click.ClickException("--workdir is required for a remote cluster: a directory on a file system "
                                   "its compute nodes see, e.g. --workdir /scratch/{username}/aiida")
    if runner_executable is None and not local:
        raise click.ClickException("--runner-executable is required for a remote cluster: the path of "
                                   "reactmlip-runner there (`pip install aiida-reactmlip` on the cluster)")
    # localhost: no wait between connections, squeue every second, no login shell (absolute code paths)
    local_tuning = {"safe_interval": 0.0, "poll_interval": 1.0, "use_login_shell": False} if local else {}
    spec = slurm.SlurmComputerSpec(
        label=label or f"slurm-{host}", hostname=host, username=user or getpass.getuser(), key_filename=key,
        workdir=workdir or str(pathlib.Path(get_config().dirpath) / "scratch-slurm" / "{username}"),
        partition=partition, port=port,
        mpiprocs_per_machine=mpiprocs_per_machine or ((os.cpu_count() or 1) if local else 1),
        key_policy="AutoAddPolicy" if trust_host_key else "RejectPolicy", **local_tuning,
    )
    try:
        computer = slurm.ensure_slurm_computer(spec, report)
        slurm.ensure_slurm_codes(computer, pw_executable=pw_executable, neb_executable=neb_executable or None,
                                 runner_executable=runner_executable, report=report)
        if check:
            report.add("login", f"{spec.username}@{host}: {slurm.check_connection(computer)}", "ok")
    except (ValueError, RuntimeError, FileNotFoundError) as exception:
        raise click.ClickException(str(exception)) from exception


@cmd_root.command("status")
@click.pass_context
def cmd_status(ctx):
    """Show the profile, storage, broker, codes, pseudo families and the models available.

    Example: reactmlip -p reactmlip status
    """
    from aiida import orm
    from rich.console import Console
    from rich.table import Table

    from aiida_reactmlip.data.model import MlipModelData
    from aiida_reactmlip.models import list_models

    from .cmd_models import weights_description

    profile = load_profile_or_fail(ctx)
    console = Console()
    table = Table(title="AiiDA profile", show_header=False)
    table.add_row("profile", profile.name)
    table.add_row("storage", f"{profile.storage_backend} {profile.storage_config.get('filepath', profile.storage_config.get('database_name', ''))}")
    table.add_row("broker", profile.process_control_backend or "none (processes run in-process with `run`)")
    # QueryBuilder on AbstractCode matches every `data.core.*` node in aiida-core 2.9: filter on the type.
    codes = orm.QueryBuilder().append(orm.Data, filters={"node_type": {"like": "data.core.code.%"}}).all(flat=True)
    codes = [code for code in codes if isinstance(code, orm.AbstractCode)]
    table.add_row("codes", "\n".join(f"{c.full_label} ({c.default_calc_job_plugin})" for c in codes) or "none: run `reactmlip setup`")
    families = orm.QueryBuilder().append(orm.Group, filters={"type_string": {"like": "pseudo.family%"}}).all(flat=True)
    table.add_row("pseudo families", "\n".join(f"{f.label} ({', '.join(sorted(f.elements))})" for f in families) or "none")
    console.print(table)

    stored = {node.model_name: node for node in orm.QueryBuilder().append(MlipModelData).all(flat=True)}
    models = Table(title="Models")
    for column in ("name", "family", "weights", "stored node"):
        models.add_column(column)
    for spec in list_models():
        node = stored.pop(spec.name, None)
        models.add_row(spec.name, spec.family, weights_description(spec), f"pk {node.pk}" if node else "-")
    for name, node in stored.items():
        models.add_row(name, node.family, f"file {node.filename}", f"pk {node.pk}")
    console.print(models)
