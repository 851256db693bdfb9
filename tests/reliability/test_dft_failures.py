"""DFT failures with real pw.x: each is recovered by a handler or ends with a named exit code, the good
frames keep their labels, an unconverged SCF is never a label, a missing pseudopotential is refused before
pw.x starts.

The runs and what they inject are in :mod:`tests.reliability.dft_failures`; its ``__main__`` writes the JSON
behind the block ``reliability-dft-failures`` of docs/reliability.md.
"""

import json

import numpy as np
import pytest
from aiida import orm

from aiida_reactmlip.calculations.functions import build_labelled_dataset, label_defect, trajectory_forces
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.report.docs_blocks import read_block
from aiida_reactmlip.workflows.label import LabelWorkChain

from . import dft_failures as df

#: pw.x energy (eV) of H2 at 0.74 Å in a 7 Å box, fast protocol, Debian's H.pbe-kjpaw (recorded 2026-12-04).
GOOD_H2_ENERGY_EV = -31.6789352
#: Energies (eV) of one SCF reached by different paths (restarts, random starting wavefunctions) agree so.
SAME_SCF_TOLERANCE_EV = 2e-5


@pytest.fixture(scope="module")
def campaign(codes, pseudo_family, tmp_path_factory):
    """The six frames of ``dft_failures.CAMPAIGN`` labelled in one LabelWorkChain: (node, rows by frame)."""
    node = df.run_campaign(codes, pseudo_family.label, tmp_path_factory.mktemp("crash-markers"))
    bases = df.base_workchains(node)
    rows = {name: df.frame_record(name, injected, node, bases[name])
            for name, (injected, _) in df.CAMPAIGN.items()}
    return node, rows


def _exits(row):
    return [run["exit_status"] for run in row["pw_runs"]]


@pytest.mark.pwx
def test_bad_frames_are_named_and_the_others_labelled(campaign):
    node, rows = campaign
    assert node.exit_status == LabelWorkChain.exit_codes.ERROR_SOME_LABELS_FAILED.status
    assert node.exit_message.startswith(
        "DFT failed for 3 configuration(s): crash_always, scf_unconverged, walltime")
    assert node.outputs.failed.get_list() == ["crash_always", "scf_unconverged", "walltime"]
    failures = node.outputs.failures.get_dict()
    assert {name: f["exit_status"] for name, f in failures.items()} == {
        "crash_always": 402, "scf_unconverged": 401, "walltime": 401}
    assert failures["crash_always"]["reason"].startswith(
        "PwBaseWorkChain failed: The process failed with an unhandled")
    dataset = node.outputs.dataset
    missing = {"crash_always": 402, "scf_unconverged": 401, "walltime": 401}
    assert dataset.base.extras.get("missing_labels") == missing
    energies = {info["name"]: e for info, e in zip(dataset.frames.info, dataset.frames.energies)}
    assert sorted(energies) == ["crash_once", "good", "scf_slow"]
    assert energies["good"] == pytest.approx(GOOD_H2_ENERGY_EV, abs=1e-4)
    for name in ("crash_once", "scf_slow"):  # recovered frames reproduce the undisturbed SCF
        assert energies[name] == pytest.approx(energies["good"], abs=SAME_SCF_TOLERANCE_EV), name
    # Every stored label comes from a PwCalculation whose SCF pw.x reports converged.
    for uuid in dataset.source_uuids:
        output = orm.load_node(uuid).outputs.output_parameters.get_dict()
        assert output["convergence_info"]["scf_conv"]["convergence_achieved"] is True
    assert rows["good"]["pw_runs"][0]["scf_steps"] == 6 and _exits(rows["good"]) == [0]


@pytest.mark.pwx
def test_scf_not_converged_handler_restarts_from_the_last_density(campaign):
    """PwBaseWorkChain's handle_electronic_convergence_not_reached: mixing beta x0.8, restart_mode 'restart'.
    With 4 steps a run the second run finishes the SCF (a real continuation: 4 + 2 steps, as from scratch);
    with 1 step a run three runs are not enough: 401."""
    _, rows = campaign
    slow = rows["scf_slow"]
    assert _exits(slow) == [410, 0]
    first, second = slow["pw_runs"]
    assert (first["scf_steps"], first["scf_converged"]) == (4, False)
    assert second["restart_mode"] == "restart" and second["read_from_file"] and second["scf_converged"]
    assert second["scf_steps"] <= 3
    assert second["mixing_beta"] == pytest.approx(0.8 * 0.4)
    # The second run starts where the first stopped, not at a from-scratch accuracy (the good run's first step).
    from_scratch = rows["good"]["pw_runs"][0]["scf_accuracy_ry"][0]
    assert second["scf_accuracy_ry"][0] < 10 * first["scf_accuracy_ry"][-1]
    assert second["scf_accuracy_ry"][0] < from_scratch / 30
    assert slow["handlers_fired"][0] == ["handle_electronic_convergence_not_reached"]
    unconverged = rows["scf_unconverged"]
    assert _exits(unconverged) == [410, 410, 410] and unconverged["pw_base_exit_status"] == 401
    errors = [run["scf_error_ry"] for run in unconverged["pw_runs"]]
    assert errors[0] > errors[1] > errors[2]  # each restart continues where the last one stopped
    assert [run["mixing_beta"] for run in unconverged["pw_runs"]] == pytest.approx([0.4, 0.32, 0.256])


@pytest.mark.pwx
def test_walltime_restarts_in_full_but_a_tiny_limit_never_progresses(campaign):
    _, rows = campaign
    walltime = rows["walltime"]
    assert _exits(walltime) == [400, 400, 400] and walltime["pw_base_exit_status"] == 401
    # 0.5 s is about pw.x's set-up: a run stops before its SCF converges (fewer steps than a full SCF), never a label
    good_steps = rows["good"]["pw_runs"][0]["scf_steps"]
    steps = [run["scf_steps"] or 0 for run in walltime["pw_runs"]]
    assert all(n < good_steps for n in steps), steps
    assert [run["restart_mode"] for run in walltime["pw_runs"]] == ["from_scratch", "restart", "restart"]
    assert all(run["read_from_file"] for run in walltime["pw_runs"][1:])
    assert walltime["handlers_fired"] == [["handle_out_of_walltime"]] * 3
    assert walltime["failure_reason"].startswith("PwBaseWorkChain failed: The maximum number of iterations")


@pytest.mark.pwx
def test_killed_pwx_is_run_once_more(campaign):
    """SIGKILL mid-SCF: the parser says 305 (stdout incomplete, no XML), no PwBaseWorkChain handler knows it;
    reactmlip.label sets on_unhandled_failure = restart_once: a second run from scratch, then 402."""
    _, rows = campaign
    once, always = rows["crash_once"], rows["crash_always"]
    assert _exits(once) == [305, 0] and once["pw_base_exit_status"] == 0 and once["label_stored"]
    assert once["pw_runs"][1]["restart_mode"] == "from_scratch"
    assert once["handlers_fired"][0] == ["on_unhandled_failure"]
    assert _exits(always) == [305, 305] and always["pw_base_exit_status"] == 402
    assert not always["label_stored"]


@pytest.mark.pwx
def test_unconverged_scf_never_becomes_a_label(codes, pseudo_family):
    """max_iterations 1 and electron_maxstep 2: the frame is absent and named; its pw.x outputs, handed to the
    dataset builder directly, are refused."""
    node = df.run_guard(codes, pseudo_family.label)
    assert node.exit_status == 401 and node.outputs.failed.get_list() == ["unconverged"]
    assert node.outputs.failures["unconverged"]["exit_status"] == 401
    frames = node.outputs.dataset.frames
    assert [info["name"] for info in frames.info] == ["good"]
    assert frames.energies[0] == pytest.approx(GOOD_H2_ENERGY_EV, abs=1e-4)
    bases = df.base_workchains(node)
    (calc,) = df.pw_calculations(bases["unconverged"])
    assert calc.exit_status == 410
    parameters = calc.outputs.output_parameters
    assert parameters["convergence_info"]["scf_conv"]["convergence_achieved"] is False
    trajectory = calc.outputs.output_trajectory if "output_trajectory" in calc.outputs else \
        df.pw_calculations(bases["good"])[0].outputs.output_trajectory
    structure = node.inputs.structures["unconverged"]
    defect = label_defect(parameters.get_dict(), trajectory_forces(trajectory), 2)
    assert defect.startswith("SCF not converged")
    datasets_before = orm.QueryBuilder().append(LabelledDatasetData).count()
    with pytest.raises(ValueError, match=r"not a DFT label: unconverged: SCF not converged \(scf accuracy"):
        build_labelled_dataset(frame_info=orm.Dict({"frame_0000": {"name": "unconverged"}}),
                               structure_frame_0000=structure, parameters_frame_0000=parameters,
                               trajectory_frame_0000=trajectory)
    assert orm.QueryBuilder().append(LabelledDatasetData).count() == datasets_before


@pytest.mark.pwx
def test_missing_pseudopotential_refused_before_pwx(codes, pseudo_family):
    refusal = df.run_missing_pseudo(codes, pseudo_family.label)
    message = refusal["message"]
    assert f"element(s) Pt with no pseudopotential in family '{pseudo_family.label}'" in message
    assert "--pseudo-family" in message and "No pw.x job was started" in message
    assert "aiida-pseudo install family" in message  # the test profile has no family with Pt
    assert refusal["process_nodes_created"] == 0


@pytest.mark.pwx
@pytest.mark.slow
def test_walltime_mid_scf_restart_is_a_real_continuation(codes, pseudo_family, campaign):
    """max_seconds = a whole SCF's wall time and a slow mixing: every run stops part-way and the next one goes
    on from the saved density and wavefunctions (a restart from scratch under the same limit never ends)."""
    _, rows = campaign
    measured = df.run_walltime_mid_scf(codes, pseudo_family.label)
    node = measured["node"]
    row = df.frame_record("walltime_mid_scf", "", node, df.base_workchains(node)["walltime_mid_scf"])
    print(f"walltime mid-SCF: max_seconds {measured['max_seconds']} s, runs {row['pw_runs']}")
    if 400 not in _exits(row):
        pytest.skip(f"pw.x finished within max_seconds = {measured['max_seconds']} s: no walltime to restart")
    assert node.is_finished_ok, node.exit_message
    assert _exits(row)[-1] == 0 and set(_exits(row)[:-1]) == {400}
    assert all(run["restart_mode"] == "restart" and run["read_from_file"] for run in row["pw_runs"][1:])
    assert all(run["scf_steps"] > 0 for run in row["pw_runs"])  # every run made progress
    from_scratch = rows["good"]["pw_runs"][0]["scf_accuracy_ry"][0]
    for before, after in zip(row["pw_runs"], row["pw_runs"][1:]):  # each goes on where the last one stopped
        assert after["scf_accuracy_ry"][0] < 10 * before["scf_accuracy_ry"][-1]
        assert after["scf_accuracy_ry"][0] < from_scratch / 30
    assert row["energy_ev"] == pytest.approx(rows["good"]["energy_ev"], abs=SAME_SCF_TOLERANCE_EV)


def test_docs_block_equals_the_json_rendering():
    results = json.loads(df.RESULTS_JSON.read_text())
    assert read_block(df.PAGE.read_text(), df.BLOCK) == df.render(results)
    rows = {row["frame"]: row for row in results["rows"]}
    assert {name for name, row in rows.items() if row["label_stored"]} >= {"good", "scf_slow", "crash_once"}
    assert not any(row["label_stored"] for name, row in rows.items()
                   if name in ("scf_unconverged", "walltime", "crash_always", "unconverged"))
    stored = [row for row in rows.values() if row["label_stored"]]
    assert all(abs(row["energy_minus_good_ev"]) < SAME_SCF_TOLERANCE_EV for row in stored)
    assert results["missing_pseudo"]["process_nodes_created"] == 0
    assert np.isclose(rows["good"]["energy_ev"], GOOD_H2_ENERGY_EV, atol=1e-4)
