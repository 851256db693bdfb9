"""The runner contract walked against every runner CalcJob and its parser (no model, no runner run).

Every runner exit status maps to a declared CalcJob exit code of the same label and message, every CalcJob
exit code of ours comes from the contract, and each parser returns that exit code for a ``status.json``
carrying the status. The settings checks are the same on both sides of the contract.
"""

from __future__ import annotations

import io
import json

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import CalculationFactory, ParserFactory

from aiida_reactmlip.runner import contract

#: entry point name -> (CalcJob import path, runner task)
RUNNER_CALCJOBS = {
    "reactmlip.evaluate": ("aiida_reactmlip.calculations.evaluate.EvaluateCalculation", "evaluate"),
    "reactmlip.evaluate_many": ("aiida_reactmlip.calculations.evaluate.EvaluateManyCalculation", "evaluate_many"),
    "reactmlip.relax": ("aiida_reactmlip.calculations.relax.RelaxCalculation", "relax"),
    "reactmlip.neb": ("aiida_reactmlip.calculations.mlip_neb.MlipNebCalculation", "neb"),
    "reactmlip.md": ("aiida_reactmlip.calculations.md.MdCalculation", "md"),
    "reactmlip.finetune": ("aiida_reactmlip.calculations.finetune.FinetuneCalculation", "finetune"),
}


def test_contract_exit_codes_are_distinct():
    codes = contract.calcjob_exit_codes("md")
    assert len({c.label for c in codes}) == len(codes) == len({c.calcjob_status for c in codes})
    statuses = [c.status for c in contract.RUNNER_EXIT_CODES]
    assert len(set(statuses)) == len(statuses) and contract.EXIT_OK not in statuses
    assert set(contract.EXIT_CODES) == {contract.EXIT_OK, *statuses}
    assert contract.label_of(contract.EXIT_DIVERGED) == "ERROR_TRAINING_DIVERGED"
    assert contract.label_of(1) == contract.FALLBACK_LABEL == "ERROR_RUNNER_FAILED"


@pytest.mark.parametrize("entry_point", sorted(RUNNER_CALCJOBS))
def test_calcjob_exit_codes_come_from_the_contract(entry_point):
    path, task = RUNNER_CALCJOBS[entry_point]
    cls = CalculationFactory(entry_point)
    assert f"{cls.__module__}.{cls.__name__}" == path and cls.TASK == task
    declared = cls.exit_codes
    for code in contract.calcjob_exit_codes(task):
        assert declared[code.label].status == code.calcjob_status
        assert declared[code.label].message == code.message
    # nothing of ours beyond the contract: every code from 300 up (below: aiida-core's own) is the contract's
    ours = {code.label for code in contract.calcjob_exit_codes(task)}
    assert {label for label, code in declared.items() if code.status >= 300} == ours
    assert cls.spec().inputs["metadata"]["options"]["parser_name"].default == entry_point


def retrieved_node(entry_point: str, localhost, status: dict | None):
    """A stored CalcJobNode of ``entry_point`` whose retrieved folder holds only ``status`` (as status.json)."""
    node = orm.CalcJobNode(computer=localhost, process_type=f"aiida.calculations:{entry_point}")
    node.set_option("resources", {"num_machines": 1, "num_mpiprocs_per_machine": 1})
    node.store()
    retrieved = orm.FolderData()
    if status is not None:
        retrieved.base.repository.put_object_from_filelike(io.BytesIO(json.dumps(status).encode()),
                                                           contract.STATUS_FILE)
    retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label="retrieved")
    retrieved.store()
    return node


@pytest.mark.parametrize("entry_point", sorted(RUNNER_CALCJOBS))
@pytest.mark.parametrize("runner_code", contract.RUNNER_EXIT_CODES, ids=lambda code: code.label)
def test_parser_maps_every_runner_status(entry_point, runner_code, localhost):
    parser_class = ParserFactory(entry_point)
    node = retrieved_node(entry_point, localhost,
                          {"exit_code": runner_code.status, "meaning": runner_code.meaning, "message": "why"})
    exit_code = parser_class(node).parse()
    if runner_code.status in parser_class.OUTPUTS_DESPITE:
        # the outputs are parsed first (the runner writes them all the same): here there are none
        assert exit_code.status == node.process_class.exit_codes.ERROR_MISSING_OUTPUT.status
        return
    expected = node.process_class.exit_codes[runner_code.label]
    assert (exit_code.status, exit_code.message) == (expected.status, expected.format(message="why").message)


@pytest.mark.parametrize("entry_point", sorted(RUNNER_CALCJOBS))
def test_parser_unknown_status_and_no_status(entry_point, localhost):
    parser_class = ParserFactory(entry_point)
    codes = CalculationFactory(entry_point).exit_codes
    killed = retrieved_node(entry_point, localhost, {"exit_code": 1, "message": "Traceback ..."})
    assert parser_class(killed).parse().status == codes.ERROR_RUNNER_FAILED.status
    silent = retrieved_node(entry_point, localhost, None)  # no status.json, no output: the runner never ran
    assert parser_class(silent).parse().status == codes.ERROR_MISSING_OUTPUT.status
    for status in parser_class.OUTPUTS_DESPITE:
        assert status in {code.status for code in contract.RUNNER_EXIT_CODES}


@pytest.mark.parametrize(
    ("task", "settings", "message"),
    [
        ("evaluate", {"mode": "fast"}, "mode must be one of auto, batched, ase"),
        ("evaluate", {"workers": 1.5}, "workers must be an integer or null"),
        ("relax", {"max_steps": -1}, "max_steps must be >= 0"),
        ("neb", {"endpoint_fmax": 0}, "endpoint_fmax must be > 0"),
        ("md", {"save_every": 0}, "save_every must be >= 1"),
    ],
)
def test_one_settings_check_on_both_sides(task, settings, message, tmp_path, capsys):
    """The CalcJob's validator and the runner refuse the same settings with the same message."""
    from aiida_reactmlip.runner.__main__ import main

    with pytest.raises(ValueError, match="must"):
        contract.check_settings(task, settings)
    path = tmp_path / "input.json"
    path.write_text(json.dumps({"family": "chgnet", "frames_file": "f.extxyz", "model_file": "m", **settings}))
    assert main([task, "--input", str(path)]) == contract.EXIT_INPUT
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("task", sorted(contract.SETTINGS))
def test_defaults_pass_their_own_check(task):
    checked = contract.check_settings(task, contract.SETTINGS[task])
    assert checked == contract.check_settings(task, {}) and list(checked) == list(contract.SETTINGS[task])
    assert set(contract.input_defaults(task)) >= set(contract.SETTINGS[task]) | set(contract.OUTPUT_FILES[task])


def test_fixed_atoms_convention():
    assert contract.fixed_atoms_from_info({"fixed_atoms": contract.fixed_atoms_info([3, 1])}, "frame 0") == [1, 3]
    assert contract.fixed_atoms_from_info({}, "frame 0") == []
    with pytest.raises(ValueError, match="is not a JSON list of atom indices"):
        contract.fixed_atoms_from_info({"fixed_atoms": "[1, -2]"}, "frame 0")
    contract.check_fixed_atoms({0: [1], 1: [4]}, [2, 5])
    with pytest.raises(ValueError, match=r"atom index\(es\) \[4\] out of range for frame 1 \(3 atoms\)"):
        contract.check_fixed_atoms([1, 4], [5, 3])
    with pytest.raises(ValueError, match=r"names frame 2, but there are 2 frame\(s\)"):
        contract.check_fixed_atoms({2: [0]}, [5, 3])
