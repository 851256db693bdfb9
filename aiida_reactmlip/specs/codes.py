"""What the builders provision on this machine: the localhost computer and codes, registry models, a
pseudopotential family covering the elements, and the job options of pw.x and neb.x runs."""

from __future__ import annotations

import typing as t


def local_codes() -> dict:
    """The codes on the localhost computer (``runner``, ``pw``, ``neb``), set up when missing."""
    from aiida_reactmlip import provision

    return provision.ensure_codes(provision.ensure_localhost())


def registry_model(name: str):
    """The stored ``MlipModelData`` of registry model ``name`` (stored when missing)."""
    from aiida_reactmlip import provision

    return provision.ensure_registry_models([name])[name]


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
