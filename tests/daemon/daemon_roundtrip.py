"""Production path, run in its own process with a private AIIDA_PATH (see test_psql_daemon.py).

PostgreSQL storage + RabbitMQ broker + a real daemon worker: submit a ``reactmlip.label`` WorkChain
of two H2 configurations (real pw.x), await it, print what the test checks as JSON, then stop the
daemon, delete the profile and drop its database whatever happened (``tests/reliability/psql_profile.py``).
"""

import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "reliability"))

from psql_profile import start_daemon, throwaway_profile, verdi  # noqa: E402


def main(repository_dir: str) -> dict:
    result: dict = {}
    with throwaway_profile(repository_dir, prefix="test_reactmlip_", result=result) as name:
        from aiida import orm
        from aiida.engine import submit
        from ase import Atoms

        from aiida_reactmlip import provision
        from aiida_reactmlip.workflows.label import LabelWorkChain

        computer = provision.ensure_localhost()
        codes = provision.ensure_codes(computer)
        provision.ensure_debian_pseudo_family()
        start_daemon(name, 1)
        result["daemon_start"] = 0
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
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1])))
