"""The ``computer`` key of campaign, study and loop files: which AiiDA computer's codes run the jobs."""

import pathlib
import shutil

import pytest
from aiida import orm

from aiida_reactmlip import provision
from aiida_reactmlip.specs.campaign import load_campaign
from aiida_reactmlip.specs.codes import local_codes
from aiida_reactmlip.specs.loop import load_loop_spec
from aiida_reactmlip.specs.study import load_study

WORKCHAINS = pathlib.Path(__file__).resolve().parents[2] / "workchains"


def _with_computer(tmp_path, name: str, value: str) -> pathlib.Path:
    """A copy of workchains/``name`` with a ``computer:`` line (the fixture files it names resolve as before)."""
    source = WORKCHAINS / name
    target = tmp_path / name
    shutil.copy(source, target)
    target.write_text(source.read_text() + f"\ncomputer: {value}\n")
    return target


def test_each_file_kind_reads_the_computer(tmp_path, monkeypatch):
    monkeypatch.chdir(WORKCHAINS.parent)
    assert load_study(_with_computer(tmp_path, "finetune-ch4-quick.yaml", "cluster-a")).computer == "cluster-a"
    assert load_campaign(_with_computer(tmp_path, "h2-dissociation.yaml", "cluster-b")).computer == "cluster-b"
    assert load_loop_spec(_with_computer(tmp_path, "loop-ch4-smoke.yaml", "cluster-c"))["computer"] == "cluster-c"
    assert load_study(WORKCHAINS / "finetune-ch4-quick.yaml").computer is None


@pytest.mark.parametrize("value", ["5", "[a, b]", "''"])
def test_a_computer_that_is_no_label_is_refused(tmp_path, monkeypatch, value):
    monkeypatch.chdir(WORKCHAINS.parent)
    with pytest.raises(ValueError, match="'computer' must be the label of an AiiDA computer"):
        load_study(_with_computer(tmp_path, "finetune-ch4-quick.yaml", value))


def test_codes_of_another_computer(aiida_profile, tmp_path):
    with pytest.raises(ValueError, match=r"no computer 'nowhere' in this profile: set it up with `reactmlip setup"):
        local_codes("nowhere")
    computer = orm.Computer(label="cluster-x", hostname="localhost", transport_type="core.local",
                            scheduler_type="core.direct", workdir=str(tmp_path)).store()
    with pytest.raises(ValueError, match=r"computer 'cluster-x' has no code reactmlip-runner@cluster-x"):
        local_codes("cluster-x")
    runner = orm.InstalledCode(label=provision.RUNNER_CODE_LABEL, computer=computer,
                               filepath_executable="/opt/bin/reactmlip-runner",
                               default_calc_job_plugin="reactmlip.evaluate").store()
    pw = orm.InstalledCode(label=provision.PW_CODE_LABEL, computer=computer, filepath_executable="/opt/bin/pw.x",
                           default_calc_job_plugin="quantumespresso.pw").store()
    codes = local_codes("cluster-x")
    assert (codes["runner"].pk, codes["pw"].pk) == (runner.pk, pw.pk) and "neb" not in codes
    assert local_codes("localhost")["runner"].computer.label == "localhost"
