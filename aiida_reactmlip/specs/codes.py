"""What the builders provision on this machine: the localhost computer and codes, registry models, a
pseudopotential family covering the elements, and the job options of pw.x and neb.x runs."""

from __future__ import annotations

import typing as t


def local_codes(computer: str | None = None) -> dict:
    """The codes ``runner``, ``pw`` (and ``neb`` where it exists) on ``computer``.

    ``None`` or ``localhost``: the localhost codes, set up when missing. Any other computer label (a cluster set
    up with ``reactmlip setup --computer-slurm HOST``): its codes ``reactmlip-runner@LABEL`` and ``pw@LABEL``
    must exist; a ``ValueError`` says how to make them.
    """
    from aiida_reactmlip import provision

    if computer in (None, provision.DEFAULT_COMPUTER):
        return provision.ensure_codes(provision.ensure_localhost())
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        orm.load_computer(computer)
    except NotExistent:
        raise ValueError(f"no computer {computer!r} in this profile: set it up with `reactmlip setup "
                         f"--computer-slurm HOST --computer-label {computer} ...` (see docs/production.md) or "
                         "list the computers with `verdi computer list`") from None
    codes = {}
    for key, label in (("runner", provision.RUNNER_CODE_LABEL), ("pw", provision.PW_CODE_LABEL),
                       ("neb", provision.NEB_CODE_LABEL)):
        try:
            codes[key] = orm.load_code(f"{label}@{computer}")
        except NotExistent:
            if key != "neb":
                raise ValueError(f"computer {computer!r} has no code {label}@{computer}: run `reactmlip setup "
                                 f"--computer-slurm HOST --computer-label {computer}` (it creates the codes) or "
                                 "`verdi code create core.code.installed`") from None
    return codes


def check_computer(data: dict, path) -> str | None:
    """The ``computer`` key of a campaign, study or loop file (a computer label), checked for its type."""
    computer = data.get("computer")
    if computer is not None and (not isinstance(computer, str) or not computer.strip()):
        raise ValueError(f"{path}: 'computer' must be the label of an AiiDA computer (e.g. localhost or "
                         f"slurm-cluster), not {computer!r}")
    return computer


def registry_model(name: str):
    """The stored ``MlipModelData`` of registry model ``name`` (stored when missing)."""
    from aiida_reactmlip import provision

    return provision.ensure_registry_models([name])[name]


def peek_registry_model(name: str):
    """The ``MlipModelData`` of registry model ``name``: the stored one, else an unstored node described from the
    weights (for checks made before anything is stored)."""
    from aiida_reactmlip.data.model import MlipModelData
    from aiida_reactmlip.models import describe_model_file, get_model_spec, locate_model_file

    spec = get_model_spec(name)
    path = locate_model_file(name)
    description = describe_model_file(spec.family, path)
    node, _ = MlipModelData.get_or_create(
        path, family=spec.family, model_name=spec.name, version=spec.version, elements=description["elements"],
        cutoff=description.get("cutoff"), dtype=description.get("dtype"), source=f"{spec.bundled_in}: {path.name}",
        match_name=True, store=False,
    )
    return node


def choose_pseudo_family(elements: t.Iterable[str], requested: str | None = None) -> str:
    """The requested family, else Debian's PBE family when it covers the elements, else PseudoDojo."""
    from aiida import orm

    from aiida_reactmlip import provision
    from aiida_reactmlip.pseudos import PSEUDODOJO_FAMILY_LABEL, ensure_pseudodojo_family

    if requested:
        return requested
    elements = set(elements)
    debian = provision.ensure_debian_pseudo_family()
    if elements <= set(debian.elements):
        return debian.label
    family = ensure_pseudodojo_family()
    missing = elements - set(family.elements)
    if missing:
        raise ValueError(f"no installed pseudopotential family covers {', '.join(sorted(missing))}")
    return orm.load_group(PSEUDODOJO_FAMILY_LABEL).label


def dft_options(processes: int, max_wallclock_seconds: int = 3600):
    """``metadata.options`` (a Dict) of a pw.x or neb.x job on one machine with ``processes`` MPI ranks."""
    from aiida import orm

    return orm.Dict({"resources": {"num_machines": 1, "num_mpiprocs_per_machine": int(processes)},
                     "withmpi": int(processes) > 1, "max_wallclock_seconds": int(max_wallclock_seconds)})


def run_in_process(builder):
    """Run ``builder`` in this interpreter (``aiida.engine.run_get_node``: no daemon); return the process node."""
    from aiida.engine import run_get_node

    _, node = run_get_node(builder)
    return node
