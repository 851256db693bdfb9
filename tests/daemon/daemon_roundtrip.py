"""Production path, run in its own process with a private AIIDA_PATH (see test_psql_daemon.py).

PostgreSQL storage + RabbitMQ broker + a real daemon worker: submit a ``reactmlip.label`` WorkChain
of two H2 configurations (real pw.x), await it, print what the test checks as JSON, then stop the
daemon, delete the profile and drop its database whatever happened.
"""

import json
import subprocess
import sys
import time
import uuid

import psycopg

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
RMQ = {"broker_protocol": "amqp", "broker_username": "guest", "broker_password": "guest", "broker_host": "127.0.0.1",
       "broker_port": 5672, "broker_virtual_host": ""}


def verdi(profile, *args, check=True):
    return subprocess.run(["verdi", "-p", profile, *args], check=check, capture_output=True, text=True, timeout=120)


def main(repository_dir: str) -> dict:
    from aiida import load_profile, orm
    from aiida.engine import submit
    from aiida.manage.configuration import create_profile, get_config
    from ase import Atoms

    from aiida_reactmlip import provision
    from aiida_reactmlip.workflows.label import LabelWorkChain

    name = f"test_reactmlip_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    result = {"profile": name}
    config = get_config(create=True)
    try:
        create_profile(
            config,
            storage_backend="core.psql_dos",
            storage_config={
                "database_engine": "postgresql_psycopg",
                "database_hostname": PG["host"],
                "database_port": PG["port"],
                "database_username": PG["user"],
                "database_password": "",
                "database_name": name,
                "repository_uri": f"file://{repository_dir}",
            },
            broker_backend="core.rabbitmq",
            broker_config=RMQ,
            name=name,
            email="daemon-test@localhost",
        )
        config.store()
        profile = load_profile(name, allow_switch=True)
        result["storage"] = profile.storage_backend
        result["broker"] = profile.process_control_backend
        computer = provision.ensure_localhost()
        codes = provision.ensure_codes(computer)
        provision.ensure_debian_pseudo_family()

        verdi(name, "config", "set", "warnings.rabbitmq_version", "False", check=False)
        started = verdi(name, "daemon", "start", "1")
        result["daemon_start"] = started.returncode
        structures = {}
        for distance in (0.74, 1.0):
            atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, distance]], cell=[7.0, 7.0, 7.0], pbc=True)
            atoms.center()
            structure = orm.StructureData(ase=atoms)
            structure.base.extras.set_many({"name": f"h2-{distance:.2f}", "scan_coordinate": distance})
            structures[f"h2_{int(distance * 100)}"] = structure.store()
        node = submit(
            LabelWorkChain,
            structures=structures,
            pw_code=codes["pw"],
            pseudo_family=orm.Str(provision.DEBIAN_FAMILY_LABEL),
            protocol=orm.Str("fast"),
            options=orm.Dict({"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}),
        )
        result["submitted_pk"] = node.pk
        t0 = time.time()
        while not node.is_terminated and time.time() - t0 < 400:
            time.sleep(2)
        result["wait_seconds"] = round(time.time() - t0, 1)
        result["terminated"] = node.is_terminated
        result["exit_status"] = node.exit_status
        if node.is_finished_ok:
            dataset = node.outputs.dataset
            frames = dataset.frames
            result["energies"] = [float(e) for e in frames.energies]
            result["names"] = [info.get("name") for info in frames.info]
            result["source_uuids"] = [info.get("source_uuid") for info in frames.info]
            result["forces_shape"] = list(frames.forces.shape)
            result["pw_calcs_finished"] = sum(
                1 for calc in orm.QueryBuilder().append(orm.CalcJobNode).all(flat=True) if calc.is_finished_ok
            )
            result["process_type"] = node.process_type
        else:
            result["report"] = verdi(name, "process", "report", str(node.pk), check=False).stdout[-3000:]
    finally:
        verdi(name, "daemon", "stop", check=False)
        try:
            from aiida.manage import get_manager

            get_manager().reset_profile()
        except Exception:  # noqa: BLE001
            pass
        config = get_config()
        if name in config.profile_names:
            config.remove_profile(name)
            config.store()
        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            result["database_dropped"] = connection.execute(
                "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()[0] == 0
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1])))
