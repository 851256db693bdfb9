"""Jobs and checks shared by the daemon scenarios (faults, concurrency): tiny pw.x labels, a tiny CHGNet
fine-tune,
tiny evaluations, and the bookkeeping that tells whether anything was lost or ran twice.

Imported by the scenario scripts only, after their throw-away profile is loaded (AiiDA imports inside
functions).
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from psql_profile import marks_by_workdir, read_marks

SERIAL = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}
#: Fine-tune hyperparameters: one epoch of one batch on one thread (seconds on a small machine).
FINETUNE_PARAMETERS = {"epochs": 1, "batch_size": 2, "learning_rate": 1e-4, "num_threads": 1}


def h2_structure(distance: float, box: float = 6.0):
    """A stored H2 StructureData, bond ``distance`` Å, in a cubic ``box`` Å; extras name and
    scan_coordinate."""
    from aiida import orm
    from ase import Atoms

    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, distance]], cell=[box] * 3, pbc=True)
    atoms.center()
    structure = orm.StructureData(ase=atoms)
    structure.base.extras.set_many({"name": f"h2-{distance:.3f}-box{box:g}", "scan_coordinate": distance})
    return structure.store()


def label_inputs(structures: dict, pw_code) -> dict:
    """Inputs of a ``reactmlip.label`` WorkChain: fast protocol, serial pw.x, spin off."""
    from aiida import orm

    from aiida_reactmlip import provision

    return {"structures": structures, "pw_code": pw_code,
            "pseudo_family": orm.Str(provision.DEBIAN_FAMILY_LABEL),
            "protocol": orm.Str("fast"), "spin": orm.Str("off"), "options": orm.Dict(SERIAL)}


def emt_copper_dataset(n_frames: int, seed: int):
    """A stored LabelledDatasetData of ``n_frames`` rattled 4-atom Cu cells labelled with EMT (eV, eV/Å)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    from aiida_reactmlip.data.dataset import LabelledDatasetData

    rng = np.random.default_rng(seed)
    images = []
    for index in range(n_frames):
        atoms = bulk("Cu", "fcc", a=3.55 + 0.03 * index, cubic=True)
        atoms.positions += rng.normal(0.0, 0.06, atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        atoms.info.update(name=f"cu-{seed}-{index}", system="cu-bulk")
        images.append(atoms)
    return LabelledDatasetData.from_atoms(images).store()


def finetune_inputs(runner_code, base_model, seed: int) -> dict:
    """Inputs of a ``reactmlip.finetune_base`` WorkChain: CHGNet on 4 EMT Cu frames, 1 epoch, seed
    ``seed``."""
    from aiida import orm

    parameters = {**FINETUNE_PARAMETERS, "seed": seed}
    return {"finetune": {"code": runner_code, "base_model": base_model, "training": emt_copper_dataset(4,
                                                                                                       seed),
                         "parameters": orm.Dict(parameters)}}


def evaluate_inputs(runner_code, model, seed: int) -> dict:
    """Inputs of a ``reactmlip.evaluate`` CalcJob: 2 EMT Cu frames, one worker process, one thread."""
    from aiida import orm

    return {"code": runner_code, "model": model, "dataset": emt_copper_dataset(2, seed),
            "settings": orm.Dict({"workers": 1, "num_threads": 1})}


# ------------------------------------------------------------------------------------------------ observation


def wait_terminated(nodes, timeout: float, poll: float = 1.0) -> bool:
    """Wait until every node of ``nodes`` is terminated; False on timeout."""
    from aiida import orm

    pks = [node.pk for node in nodes]
    deadline = time.time() + timeout
    while time.time() < deadline:
        query = orm.QueryBuilder().append(orm.ProcessNode, filters={"id": {"in": pks}},
                                          project=["attributes.process_state"])
        states = query.all(flat=True)
        if all(state in ("finished", "excepted", "killed") for state in states):
            return True
        time.sleep(poll)
    return False


def calcjob_rows() -> list[dict]:
    """Every CalcJobNode: pk, label (process class), process state, calc job state, remote workdir."""
    from aiida import orm

    keys = ["id", "uuid", "attributes.process_label", "attributes.process_state", "attributes.state",
            "attributes.remote_workdir", "attributes.process_status"]
    query = orm.QueryBuilder().append(orm.CalcJobNode, project=keys)
    names = ("pk", "uuid", "label", "process_state", "calc_state", "workdir", "status")
    return [dict(zip(names, row)) for row in query.all()]


#: CalcJob states between creation and the scheduler's job id stored on the node (aiida-core 2.9.4 marks a job
#: "unstashing" between its upload and its submission).
IN_TRANSIT = (None, "uploading", "unstashing", "submitting")


def in_transit() -> list[dict]:
    """Active CalcJobs not yet known to be with the scheduler: created, uploading or submitting."""
    return [{"uuid": row["uuid"], "label": row["label"],
             "calc_state": row["calc_state"]} for row in calcjob_rows()
            if row["process_state"] in ("created", "running", "waiting") and row["calc_state"] in IN_TRANSIT]


def running_jobs(marks_file: pathlib.Path, label: str) -> list[dict]:
    """CalcJobs of process class ``label`` whose executable started (a start mark) and has not ended."""
    marks = read_marks(marks_file)
    started, ended = marks_by_workdir(marks, "start"), marks_by_workdir(marks, "end")
    return [row for row in calcjob_rows() if row["label"] == label and row["workdir"]
            and started.get(row["workdir"], 0) > ended.get(row["workdir"], 0)]


def ended_not_parsed(marks_file: pathlib.Path) -> list[dict]:
    """CalcJobs whose executable ended (an end mark) but whose process has not terminated: retrieving or
    parsing."""
    ended = marks_by_workdir(read_marks(marks_file), "end")
    return [row for row in calcjob_rows() if row["workdir"] in ended
            and row["process_state"] not in ("finished", "excepted", "killed")]


def between_steps(workchains) -> list[dict]:
    """WorkChains (of ``workchains``) not terminated whose called processes all are: between two steps."""
    from aiida import orm

    found = []
    for workchain in workchains:
        node = orm.load_node(workchain.pk)
        if node.is_terminated or not node.called:
            continue
        if all(child.is_terminated for child in node.called):
            found.append({"pk": node.pk, "label": node.process_label,
                          "process_state": getattr(node.process_state, 'value', 'none'),
                          "status": node.process_status})
    return found


# ------------------------------------------------------------------------------------------------ bookkeeping


def job_accounting(marks_file: pathlib.Path) -> dict:
    """Per CalcJob: runs of its executable (start marks in its workdir), cache source, job id; totals per
    label.

    ``repeated`` counts executable starts beyond one per working directory plus working directories shared by
    two CalcJobs; ``unknown_workdirs`` marks in no CalcJob's working directory (both must be 0).
    """
    from aiida import orm

    marks = read_marks(marks_file)
    starts = marks_by_workdir(marks, "start")
    rows = []
    for node in orm.QueryBuilder().append(orm.CalcJobNode).all(flat=True):
        workdir = node.get_remote_workdir()
        cached = node.base.caching.get_cache_source()
        rows.append({"pk": node.pk, "uuid": node.uuid, "label": node.process_label, "cached_from": cached,
                     "workdir": workdir, "job_id": node.get_job_id(), "starts": 0 if cached else starts.get(workdir, 0),
                     "state": getattr(node.process_state, 'value', 'none'), "exit_status": node.exit_status,
                     "remote_folder": "remote_folder" in node.outputs})
    own_workdirs = [row["workdir"] for row in rows if not row["cached_from"]]
    totals: dict[str, dict] = {}
    for row in rows:
        total = totals.setdefault(row["label"], {"calcjobs": 0, "cached": 0, "executable_starts": 0,
                                                 "repeated": 0, "never_started": 0, "killed_before_start": 0})
        total["calcjobs"] += 1
        total["cached"] += bool(row["cached_from"])
        total["executable_starts"] += row["starts"]
        total["repeated"] += max(0, row["starts"] - 1)
        unstarted = not row["cached_from"] and row["starts"] == 0
        # `verdi process kill` may catch a CalcJob before its executable started: not a fault of the run
        total["killed_before_start"] += int(unstarted and row["state"] == "killed")
        total["never_started"] += int(unstarted and row["state"] != "killed")
    job_ids = [row["job_id"] for row in rows if not row["cached_from"] and row["job_id"]]
    return {
        "rows": rows,
        "totals": totals,
        "shared_workdirs": len(own_workdirs) - len(set(own_workdirs)),
        "unknown_workdirs": sorted(set(starts) - set(own_workdirs)),
        "duplicate_job_ids": len(job_ids) - len(set(job_ids)),
        "aiida_out_files": sum(1 for row in rows if not row["cached_from"] and row["workdir"]
                               and (row["starts"] or row["state"] != "killed")
                               and (pathlib.Path(row["workdir"]) / "aiida.out").exists()),
        # second submissions of one job script that the localhost computer's run-once guard ended unrun
        "resubmissions_not_run": sum(1 for w in own_workdirs if w and _guard_stopped(pathlib.Path(w))),
        # aiida-core 2.9.4: a worker killed after a job's upload but before the next checkpoint; the
        # reloaded process
        # skips the upload ("already marked as UNSTASHING") and never attaches the remote_folder output
        "finished_ok_without_remote_folder": sorted(row["uuid"] for row in rows
                                                    if row["exit_status"] == 0 and not row["remote_folder"]),
    }


def _guard_stopped(workdir: pathlib.Path) -> bool:
    """Whether the run-once guard ended a second submission of the job in ``workdir`` (its stderr says so)."""
    from aiida_reactmlip.provision import RUN_ONCE_MESSAGE

    stderr = workdir / "_scheduler-stderr.txt"
    return stderr.exists() and RUN_ONCE_MESSAGE in stderr.read_text(errors="replace")


def label_accounting(workchain, expected_names: list[str]) -> dict:
    """What a finished ``reactmlip.label`` WorkChain stored against what it was given: frames, names, sources,
    and PwCalculations per structure."""
    from aiida import orm

    node = orm.load_node(workchain.pk)
    per_structure = {}
    reruns_after_success = 0
    for base in node.called:
        calcs = sorted((c for c in base.called_descendants if isinstance(c, orm.CalcJobNode)), key=lambda c: c.ctime)
        per_structure[base.pk] = len(calcs)
        # a second pw.x for one structure is right only after a first that gave no usable result (killed,
        # failed, or finished without its remote_folder: restart_once of reactmlip.label)
        reruns_after_success += sum(1 for c in calcs[:-1] if c.is_finished_ok and "remote_folder" in c.outputs)
    result = {"uuid": node.uuid, "pk": node.pk, "exit_status": node.exit_status,
              "expected_frames": len(expected_names),
              "pw_calcjobs_per_structure": sorted(per_structure.values()),
              "pw_reruns_after_success": reruns_after_success}
    if "dataset" in node.outputs:
        dataset = node.outputs.dataset
        names = [info.get("name") for info in dataset.frames.info]
        sources = dataset.source_uuids
        finished_calcs = {c.uuid for c in node.called_descendants
                          if isinstance(c, orm.CalcJobNode) and c.is_finished_ok}
        result.update(dataset_uuid=dataset.uuid, frames=dataset.n_frames,
                      names_match=sorted(names) == sorted(expected_names),
                      unique_sources=len(set(sources)), sources_are_its_calcjobs=set(sources) <= finished_calcs)
    else:
        result.update(dataset_uuid=None, frames=0, names_match=False, unique_sources=0,
                      sources_are_its_calcjobs=False)
    result["lost"] = result["expected_frames"] - result["unique_sources"]
    # labels lost because pw.x finished ok but its CalcJob lacks remote_folder (see job_accounting)
    result["lost_without_remote_folder"] = sum(
        1 for base in node.called if not base.is_finished_ok
        and any(isinstance(c, orm.CalcJobNode) and c.is_finished_ok and "remote_folder" not in c.outputs
                for c in base.called))
    result["duplicated"] = result["frames"] - result["unique_sources"]
    return result


def pw_processes_in(workdirs: list[str]) -> list[int]:
    """PIDs of pw.x processes whose current directory is one of ``workdirs``."""
    pids = []
    wanted = {str(pathlib.Path(w).resolve()) for w in workdirs if w}
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if "pw.x" in (proc / "cmdline").read_bytes().decode(errors="replace") and \
                    str((proc / "cwd").resolve()) in wanted:
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids
