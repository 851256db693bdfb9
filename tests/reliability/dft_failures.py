"""DFT failures injected into real pw.x runs of ``reactmlip.label``, and what became of each.

Every frame is the same H2 molecule (0.74 Å, 7 Å box, fast protocol, serial pw.x), so a frame that a handler
recovered must reproduce the energy of the undisturbed one. The failures, injected per frame:

- ``scf_unconverged``: ``electron_maxstep = 1``; PwBaseWorkChain's handler lowers ``mixing_beta`` and restarts
  from the last charge density, one SCF step a run: no rescue within ``max_iterations``.
- ``scf_slow``: ``electron_maxstep = 4`` (a full SCF takes 6): the same handler's restart finishes it.
- ``walltime``: ``CONTROL.max_seconds = 0.5`` (what PwBaseWorkChain makes of a tiny ``max_wallclock_seconds``:
  0.95 of it): pw.x stops cleanly before its first SCF step, every run.
- ``crash_once`` / ``crash_always``: the job's prepend text starts a watcher that sends SIGKILL to this job's
  own pw.x (``pgrep -P $$``) once ``aiida.out`` shows an SCF iteration; ``crash_once`` only on its first run.
- a missing pseudopotential (PtH against a family without Pt): refused before any process starts.

``python tests/reliability/dft_failures.py`` (profile ``reactmlip``, about 3 min on 2 cores) writes
``docs/results/reliability-dft-failures.json`` and the block ``reliability-dft-failures`` of
docs/reliability.md.
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile
import time

import numpy as np

from aiida_reactmlip.report.docs_blocks import REPO_ROOT, markdown_table, provenance, write_block

RESULTS_JSON = REPO_ROOT / "docs" / "results" / "reliability-dft-failures.json"
PAGE = REPO_ROOT / "docs" / "reliability.md"
BLOCK = "reliability-dft-failures"
COMMAND = "python tests/reliability/dft_failures.py"

SERIAL_PW_OPTIONS = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}
H2_BOND_ANGSTROM = 0.74
#: The title (CONTROL) of a frame whose pw.x the prepend text kills: on every run, or on the first only.
CRASH_ALWAYS_TITLE = "reactmlip-crash-always"
CRASH_ONCE_TITLE = "reactmlip-crash-once"

#: frame name -> (how the failure is injected, pw.x namelist overrides of that frame).
CAMPAIGN = {
    "good": ("nothing", {}),
    "scf_unconverged": ("ELECTRONS.electron_maxstep = 1", {"ELECTRONS": {"electron_maxstep": 1}}),
    "scf_slow": ("ELECTRONS.electron_maxstep = 4 (a full SCF needs 6)",
                 {"ELECTRONS": {"electron_maxstep": 4}}),
    "walltime": ("CONTROL.max_seconds = 0.5", {"CONTROL": {"max_seconds": 0.5}}),
    "crash_once": ("SIGKILL to pw.x mid-SCF, first run only", {"CONTROL": {"title": CRASH_ONCE_TITLE}}),
    "crash_always": ("SIGKILL to pw.x mid-SCF, every run", {"CONTROL": {"title": CRASH_ALWAYS_TITLE}}),
}


def crash_prepend(marker_dir: pathlib.Path) -> str:
    """Job prepend text: a background watcher that kills this job's own pw.x (child of the job script, ``$$``)
    once its stdout shows an SCF iteration, for frames titled to crash (``crash_once``: while
    ``marker_dir/once`` does not exist yet)."""
    return (
        f"if grep -q {CRASH_ALWAYS_TITLE} aiida.in || "
        f"{{ grep -q {CRASH_ONCE_TITLE} aiida.in && mkdir {marker_dir}/once 2>/dev/null; }}; then\n"
        "  ( for i in $(seq 1200); do if grep -q 'iteration #' aiida.out 2>/dev/null; then "
        "kill -9 $(pgrep -P $$ -x pw.x); break; fi; sleep 0.05; done ) &\n"
        "fi"
    )


def h2_structures(names) -> dict:
    """One stored H2 StructureData per name (distinct nodes, same geometry), extra ``name`` set."""
    from aiida import orm
    from ase import Atoms

    structures = {}
    for name in names:
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, H2_BOND_ANGSTROM]], cell=[7, 7, 7], pbc=True)
        atoms.center()
        structure = orm.StructureData(ase=atoms)
        structure.base.extras.set("name", name)
        structures[name] = structure.store()
    return structures


def run_label(codes, family_label: str, structures: dict, frame_overrides: dict, max_iterations: int,
              options: dict | None = None):
    """Run ``reactmlip.label`` (fast protocol, serial pw.x) in-process; the finished node."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.workflows.label import LabelWorkChain

    inputs = {"structures": structures, "pw_code": codes["pw"], "pseudo_family": orm.Str(family_label),
              "protocol": orm.Str("fast"), "options": orm.Dict(options or SERIAL_PW_OPTIONS),
              "max_iterations": orm.Int(max_iterations)}
    if frame_overrides:
        inputs["frame_overrides"] = orm.Dict(frame_overrides)
    return run_get_node(LabelWorkChain, **inputs)[1]


def run_campaign(codes, family_label: str, marker_dir: pathlib.Path, max_iterations: int = 3):
    """The six frames of :data:`CAMPAIGN` in one LabelWorkChain (default ``max_iterations`` 3)."""
    overrides = {name: values for name, (_, values) in CAMPAIGN.items() if values}
    options = {**SERIAL_PW_OPTIONS, "prepend_text": crash_prepend(marker_dir)}
    return run_label(codes, family_label, h2_structures(CAMPAIGN), overrides, max_iterations, options)


def run_guard(codes, family_label: str):
    """``good`` and ``unconverged`` (``electron_maxstep = 2``) with ``max_iterations = 1``: no handler can
    rescue the second, its last pw.x run is unconverged."""
    return run_label(codes, family_label, h2_structures(["good", "unconverged"]),
                     {"unconverged": {"ELECTRONS": {"electron_maxstep": 2}}}, max_iterations=1)


#: Mixing of the mid-SCF walltime frame: slow on purpose, so that its SCF needs several times the steps of
#: the calibration run (about 6) and each run under the limit can only do part of it.
SLOW_MIXING_BETA = 0.1


def run_walltime_mid_scf(codes, family_label: str, max_iterations: int = 10) -> dict:
    """Walltime mid-SCF: a calibration run of H2 alone gives the wall time W (s) of a whole SCF (set-up and
    about 6 steps) at the machine's present speed; then H2 with ``mixing_beta`` 0.1 under ``max_seconds`` = W,
    so every run stops part-way and only restarts that go on from the saved state can finish it."""
    calibration = run_label(codes, family_label, h2_structures(["calibration"]), {}, max_iterations=1)
    calculation = pw_calculations(base_workchains(calibration)["calibration"])[0]
    max_seconds = round(float(calculation.outputs.output_parameters["wall_time_seconds"]), 2)
    overrides = {"CONTROL": {"max_seconds": max_seconds}, "ELECTRONS": {"mixing_beta": SLOW_MIXING_BETA}}
    node = run_label(codes, family_label, h2_structures(["walltime_mid_scf"]),
                     {"walltime_mid_scf": overrides}, max_iterations)
    return {"max_seconds": max_seconds, "calibration_uuid": calibration.uuid, "node": node}


def run_missing_pseudo(codes, family_label: str) -> dict:
    """Label PtH with a family that lacks Pt: the refusal message and the process nodes it created (none)."""
    from aiida import orm
    from aiida.engine import run_get_node
    from ase import Atoms

    from aiida_reactmlip.workflows.label import LabelWorkChain

    atoms = Atoms("PtH", positions=[[0, 0, 0], [0, 0, 1.6]], cell=[8, 8, 8], pbc=True)
    structure = orm.StructureData(ase=atoms)
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    message = None
    try:
        run_get_node(LabelWorkChain, structures={"pth": structure}, pw_code=codes["pw"],
                     pseudo_family=orm.Str(family_label), protocol=orm.Str("fast"))
    except ValueError as exception:
        message = str(exception)
    created = orm.QueryBuilder().append(orm.ProcessNode).count() - before
    return {"message": message, "process_nodes_created": created}


def pw_calculations(base_workchain) -> list:
    """The PwCalculations a PwBaseWorkChain ran, in order."""
    calcs = [n for n in base_workchain.called if n.process_type == "aiida.calculations:quantumespresso.pw"]
    return sorted(calcs, key=lambda n: n.ctime)


def stdout_lines(calculation, *needles: str) -> list[str]:
    """The lines of a PwCalculation's retrieved ``aiida.out`` that contain any of ``needles``."""
    try:
        text = calculation.outputs.retrieved.base.repository.get_object_content("aiida.out")
    except Exception:  # noqa: BLE001 - a crashed run may have retrieved nothing
        return []
    return [line.strip() for line in text.splitlines() if any(needle in line for needle in needles)]


def base_workchains(label_node) -> dict:
    """Frame name -> the PwBaseWorkChain ``reactmlip.label`` ran for it (call link ``label_<name>``)."""
    from aiida.common.links import LinkType

    links = label_node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()
    return {link.link_label.removeprefix("label_"): link.node for link in links
            if link.link_label.startswith("label_")}


def run_record(calculation) -> dict:
    """What one pw.x run did: exit status, restart mode, SCF steps and accuracy, wall time (s), files read."""
    inputs = calculation.inputs.parameters.get_dict()
    outputs = calculation.outputs
    output = outputs.output_parameters.get_dict() if "output_parameters" in outputs else {}
    scf = output.get("convergence_info", {}).get("scf_conv", {})
    return {
        "uuid": calculation.uuid,
        "exit_status": calculation.exit_status,
        "restart_mode": inputs.get("CONTROL", {}).get("restart_mode", "from_scratch"),
        "mixing_beta": inputs.get("ELECTRONS", {}).get("mixing_beta"),
        "scf_converged": scf.get("convergence_achieved"),
        "scf_steps": scf.get("n_scf_steps"),
        "scf_error_ry": scf.get("scf_error"),
        "wall_time_s": output.get("wall_time_seconds"),
        "read_from_file": bool(stdout_lines(calculation, "The initial density is read from file")),
        "scf_accuracy_ry": scf_accuracies(calculation),
    }


def scf_accuracies(calculation) -> list[float]:
    """pw.x's 'estimated scf accuracy' (Ry) after each SCF step of a run, from its stdout: a run that goes on
    from a saved state starts near where the last one stopped, a run from scratch near 0.1 Ry."""
    values = []
    for line in stdout_lines(calculation, "estimated scf accuracy"):
        try:
            values.append(float(line.split("<")[1].split()[0]))
        except (IndexError, ValueError):
            continue
    return values


def frame_record(name: str, injected: str, label_node, base) -> dict:
    """One row: the failure's injection, every pw.x run, the handlers PwBaseWorkChain ran, the outcome."""
    runs = [run_record(calc) for calc in pw_calculations(base)]
    dataset = label_node.outputs.dataset if "dataset" in label_node.outputs else None
    energies = {info["name"]: float(e) for info, e in zip(dataset.frames.info, dataset.frames.energies)} \
        if dataset is not None else {}
    handlers = [[entry[0] for entry in step if entry[1] is not None]
                for step in base.base.extras.get("considered_handlers", [])]
    for run, fired in zip(runs, handlers):
        if run["exit_status"] and not fired:  # no handler knows it: on_unhandled_failure decides
            fired.append("on_unhandled_failure")
    failures = label_node.outputs.failures.get_dict() if "failures" in label_node.outputs else {}
    return {
        "frame": name,
        "injected": injected,
        "pw_runs": runs,
        "restarts": max(len(runs) - 1, 0),
        "handlers_fired": handlers,
        "pw_base_exit_status": base.exit_status,
        "pw_base_exit_message": base.exit_message or "",
        "pw_base_uuid": base.uuid,
        "label_stored": name in energies,
        "energy_ev": energies.get(name),
        "failure_reason": failures.get(name, {}).get("reason"),
    }


def summarise(campaign, guard, walltime_mid, refusal: dict, walls: dict) -> dict:
    """The results JSON: provenance, the LabelWorkChains' outcomes and one row per failure kind."""
    def workchain(node) -> dict:
        return {"uuid": node.uuid, "exit_status": node.exit_status, "exit_message": node.exit_message or "",
                "failed": node.outputs.failed.get_list() if "failed" in node.outputs else [],
                "dataset_uuid": node.outputs.dataset.uuid if "dataset" in node.outputs else None}

    bases = base_workchains(campaign)
    rows = [frame_record(name, injected, campaign, bases[name]) for name, (injected, _) in CAMPAIGN.items()]
    guard_bases = base_workchains(guard)
    rows.append(frame_record("unconverged", "ELECTRONS.electron_maxstep = 2, max_iterations = 1", guard,
                             guard_bases["unconverged"]))
    if walltime_mid is not None:
        max_seconds = walltime_mid["max_seconds"]
        node = walltime_mid["node"]
        injected = (f"CONTROL.max_seconds = {max_seconds:.2f} (a whole SCF's wall time, measured before),"
                    f" mixing_beta = {SLOW_MIXING_BETA}")
        base = base_workchains(node)["walltime_mid_scf"]
        rows.append(frame_record("walltime_mid_scf", injected, node, base))
    good = next(row["energy_ev"] for row in rows if row["frame"] == "good")
    for row in rows:
        row["energy_minus_good_ev"] = None if row["energy_ev"] is None else row["energy_ev"] - good
    workchains = {"campaign": workchain(campaign), "guard": workchain(guard)}
    if walltime_mid is not None:
        workchains["walltime_mid_scf"] = workchain(walltime_mid["node"])
    return {
        "provenance": provenance(COMMAND),
        "system": f"H2, {H2_BOND_ANGSTROM} A in a 7 A box, fast protocol, Debian PAW, serial pw.x",
        "walls_s": walls,
        "label_workchains": workchains,
        "missing_pseudo": refusal,
        "rows": rows,
    }


#: The failure kind each frame stands for (first column of the table).
FAILURE_KIND = {
    "good": "none",
    "scf_unconverged": "SCF not converged",
    "scf_slow": "SCF not converged",
    "unconverged": "SCF not converged",
    "walltime": "walltime",
    "walltime_mid_scf": "walltime",
    "crash_once": "pw.x killed",
    "crash_always": "pw.x killed",
}

OUTCOME_TEXT = {
    0: "label stored",
    401: "ERROR_MAXIMUM_ITERATIONS_EXCEEDED (401)",
    402: "ERROR_UNHANDLED_FAILURE (402)",
}


def render(results: dict) -> str:
    """Markdown for block ``reliability-dft-failures``: one row per injected failure."""
    rows = []
    for row in results["rows"]:
        exits = ", ".join(str(run["exit_status"]) for run in row["pw_runs"])
        fired = sorted({name for step in row["handlers_fired"] for name in step})
        steps = "+".join("-" if run["scf_steps"] is None else str(run["scf_steps"]) for run in row["pw_runs"])
        energy = "-" if row["energy_ev"] is None else \
            f"{row['energy_ev']:.6f} ({row['energy_minus_good_ev']:+.1e})"
        outcome = OUTCOME_TEXT.get(row["pw_base_exit_status"], str(row["pw_base_exit_status"]))
        label = "yes" if row["label_stored"] else "no"
        rows.append([FAILURE_KIND.get(row["frame"], "?"), f"`{row['frame']}`", row["injected"], exits, steps,
                     ", ".join(fired) or "none", row["restarts"], outcome, label, energy])
    refusal = results["missing_pseudo"]
    rows.append(["missing pseudopotential", "`pth`", "PtH, family without Pt", "no run", "-",
                 "input validator", 0, f"none ({refusal['process_nodes_created']} process nodes)", "no", "-"])
    table = markdown_table(
        ["failure", "frame", "injected", "pw.x exit per run", "SCF steps per run", "handlers fired",
         "restarts", "PwBaseWorkChain", "label", "energy eV (minus `good`)"], rows)
    workchains = results["label_workchains"]
    lines = [table, ""]
    for name, node in workchains.items():
        failed = ", ".join(node["failed"]) or "none"
        lines.append(f"- LabelWorkChain `{name}`: exit {node['exit_status']} "
                     f"({node['exit_message'] or 'finished ok'}); `failed` = {failed}.")
    lines.append(f"- Missing pseudopotential: refused before any process started: \"{refusal['message']}\"")
    origin = results["provenance"]
    lines += ["", f"Generated by `{origin['command']}` on {origin['generated']} "
              f"(load {origin['load_average']}); node UUIDs in "
              "`docs/results/reliability-dft-failures.json`."]
    return "\n".join(lines)


def main() -> int:
    """Run every injected failure on profile ``reactmlip`` and write the JSON and the docs block
    (``--render``: only rewrite the block from the JSON)."""
    if "--render" in sys.argv[1:]:
        write_block(PAGE, BLOCK, render(json.loads(RESULTS_JSON.read_text())))
        return 0
    from aiida import load_profile

    from aiida_reactmlip import provision

    load_profile(provision.DEFAULT_PROFILE)
    codes = provision.ensure_codes(provision.ensure_localhost())
    family = provision.ensure_debian_pseudo_family().label
    walls = {}
    with tempfile.TemporaryDirectory() as marker_dir:
        start = time.perf_counter()
        campaign = run_campaign(codes, family, pathlib.Path(marker_dir))
        walls["campaign"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    guard = run_guard(codes, family)
    walls["guard"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    walltime_mid = run_walltime_mid_scf(codes, family)
    walls["walltime_mid_scf"] = round(time.perf_counter() - start, 1)
    refusal = run_missing_pseudo(codes, family)
    results = summarise(campaign, guard, walltime_mid, refusal, walls)
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    write_block(PAGE, BLOCK, render(results))
    print(render(results))
    return 0


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


if __name__ == "__main__":
    sys.exit(main())
