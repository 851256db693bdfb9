"""Shared fixtures: a temporary SQLite profile (aiida.tools.pytest_fixtures), codes, pseudos, models, datasets."""

import os

import pytest

pytest_plugins = ["aiida.tools.pytest_fixtures"]

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session", autouse=True)
def aiida_profile(aiida_config, aiida_profile_factory):
    """The session's temporary SQLite profile (no broker), polling children every second, not every 60 s."""
    with aiida_profile_factory(aiida_config) as profile:
        aiida_config.set_option("runner.poll.interval", 1, scope=profile.name)
        yield profile


@pytest.fixture(scope="session")
def localhost(aiida_profile):
    from aiida_reactmlip import provision

    return provision.ensure_localhost()


@pytest.fixture(scope="session")
def codes(localhost):
    """pw@localhost, neb@localhost and reactmlip-runner@localhost, as `reactmlip setup` makes them."""
    from aiida_reactmlip import provision

    return provision.ensure_codes(localhost)


@pytest.fixture(scope="session")
def pseudo_family(aiida_profile):
    from aiida_reactmlip import provision

    return provision.ensure_debian_pseudo_family()


@pytest.fixture(scope="session")
def registry_models(aiida_profile):
    """CHGNet 0.3.0 and SevenNet-0 bundled weights stored as MlipModelData."""
    from aiida_reactmlip import provision

    return provision.ensure_registry_models(["chgnet-0.3.0", "sevennet-0"])


SERIAL_PW_OPTIONS = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}


@pytest.fixture(scope="session")
def h2_scan_label(codes, pseudo_family):
    """The H2 bond scan (7 frames) labelled with real pw.x at the fast protocol: the finished LabelWorkChain node."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.systems import get_system
    from aiida_reactmlip.workflows.benchmark import link_label
    from aiida_reactmlip.workflows.label import LabelWorkChain

    structures = {}
    for atoms in get_system("h2-dissociation").configurations:
        structure = orm.StructureData(ase=atoms)
        structure.base.extras.set_many({k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool))})
        structures[link_label(atoms.info["name"])] = structure.store()
    _, node = run_get_node(
        LabelWorkChain,
        structures=structures,
        pw_code=codes["pw"],
        pseudo_family=orm.Str(pseudo_family.label),
        protocol=orm.Str("fast"),
        options=orm.Dict(SERIAL_PW_OPTIONS),
    )
    return node


@pytest.fixture(scope="session")
def h2_benchmark(h2_scan_label, registry_models, codes):
    """reactmlip.benchmark of CHGNet 0.3.0 and SevenNet-0 on the labelled H2 scan: the finished node."""
    from aiida.engine import run_get_node

    from aiida_reactmlip.workflows.benchmark import BenchmarkWorkChain

    _, node = run_get_node(
        BenchmarkWorkChain,
        dataset=h2_scan_label.outputs.dataset,
        models={"chgnet": registry_models["chgnet-0.3.0"], "sevennet": registry_models["sevennet-0"]},
        runner_code=codes["runner"],
    )
    return node
