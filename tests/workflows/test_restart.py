"""The restart layer (workflows/restart.py): a real CHGNet fine-tune that diverges is retried with halved learning
rates; the killed-job, out-of-memory, not-converged and exhausted-retries handlers on finished CalcJob nodes."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from plumpy import ProcessState

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.workflows.restart import (
    EvaluateBaseWorkChain,
    FinetuneBaseWorkChain,
    MlipNebBaseWorkChain,
    RelaxBaseWorkChain,
    failure_reason,
)


def copper_frames(lattice=(3.55, 3.65)) -> list:
    """Rattled 4-atom Cu fcc cells, one per lattice constant (Å, each its own group), EMT energy (eV), forces (eV/Å)."""
    rng = np.random.default_rng(0)
    frames = []
    for a in lattice:
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        atoms.positions += rng.normal(0.0, 0.08, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.calc = SinglePointCalculator(atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
        atoms.info.update(group=f"a={a:.2f}", system="cu-bulk")
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def copper(aiida_profile):
    return LabelledDatasetData.from_atoms(copper_frames()).store()


def report_lines(node) -> list[str]:
    """The report messages of ``node``, without their ``[pk|class|step]: `` prefix."""
    return [log.message.split("]: ", 1)[-1] for log in orm.Log.collection.get_logs_for(node)]


# ------------------------------------------------------------------- real CHGNet 0.3.0, a diverging learning rate

#: Adam steps of ~lr per parameter: on copper_frames, 2 epochs of batch 1, CHGNet 0.3.0's loss becomes NaN in
#: epoch 2 at lr 16 to 80 (measured), stays finite at lr 13 and below (lr 14: finite loss, NaN predictions).
#: 80 -> 40 -> 20 diverge, 10 trains: each side a factor 1.25 or more away from that edge.
DIVERGING = {"learning_rate": 80.0, "epochs": 2, "batch_size": 1, "seed": 0, "num_threads": 1}


@pytest.mark.mlip
def test_diverged_finetune_is_retried_with_halved_learning_rates(codes, registry_models, copper):
    base = registry_models["chgnet-0.3.0"]
    results, node = run_get_node(FinetuneBaseWorkChain, finetune={
        "code": codes["runner"], "base_model": base, "training": copper, "parameters": orm.Dict(DIVERGING),
    })
    jobs = sorted(node.called, key=lambda child: child.ctime)
    assert [job.process_label for job in jobs] == ["FinetuneCalculation"] * 4
    # three divergences, each retried at half the learning rate; the fourth try trains
    assert [job.inputs.parameters["learning_rate"] for job in jobs] == [80.0, 40.0, 20.0, 10.0]
    diverged = FinetuneBaseWorkChain._process_class.exit_codes.ERROR_TRAINING_DIVERGED.status
    assert [job.exit_status for job in jobs] == [diverged, diverged, diverged, 0]
    for job in jobs:  # only the learning rate changed
        assert {k: v for k, v in job.inputs.parameters.items() if k != "learning_rate"} == {
            k: v for k, v in DIVERGING.items() if k != "learning_rate"}
        assert job.inputs.training.uuid == copper.uuid and job.inputs.base_model.uuid == base.uuid
    assert "diverged" in jobs[2].exit_message and "(now 20.0)" in jobs[2].exit_message

    assert node.is_finished_ok, failure_reason(node)
    assert results["model"].uuid == jobs[-1].outputs.model.uuid
    assert results["model"].creator.uuid == jobs[-1].uuid and results["model"].base_model_uuid == base.uuid
    assert results["report"].get_dict()["hyperparameters"]["learning_rate"] == 10.0
    assert np.all(np.isfinite(results["history"].get_array("train_loss")))
    lines = report_lines(node)
    for old, new in ((80, 40), (40, 20), (20, 10)):
        assert f"training diverged at lr {old}: retrying with lr {new}" in lines


# ------------------------------------------------------------------- handlers, on finished CalcJob nodes


def instantiate(process_class, inputs):
    """The WorkChain ``process_class`` on ``inputs``, not run, after its ``setup`` step."""
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    process = instantiate_process(get_manager().get_runner(), process_class, **inputs)
    process.setup()
    return process


def finished_job(process, exit_status: int, message: str = ""):
    """A stored, finished CalcJobNode of ``process``'s job class with ``exit_status``, as its last child."""
    job_class = process._process_class
    node = orm.CalcJobNode(computer=process.ctx.inputs.code.computer, process_type=job_class.build_process_type())
    node.set_process_label(job_class.__name__)
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(exit_status)
    node.set_exit_message(message)
    node.store()
    process.ctx.iteration += 1
    process.ctx.children = [*process.ctx.get("children", []), node]
    return node


@pytest.fixture
def evaluate(codes, registry_models, copper):
    inputs = {"code": codes["runner"], "model": registry_models["chgnet-0.3.0"], "dataset": copper,
              "settings": orm.Dict({"batch_size": 4, "device": "cuda"})}
    return instantiate(EvaluateBaseWorkChain, {"evaluate": inputs})


def test_out_of_memory_halves_the_batch_down_to_one(evaluate):
    codes = EvaluateBaseWorkChain._process_class.exit_codes
    cuda = "The runner failed: evaluation failed: OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    for status, message, halved in ((codes.ERROR_RUNNER_FAILED.status, cuda, 2),
                                    (codes.ERROR_SCHEDULER_OUT_OF_MEMORY.status, "", 1)):
        finished_job(evaluate, status, message)
        assert evaluate.inspect_process().status == 0  # restart
        assert evaluate.ctx.inputs.settings == {"batch_size": halved, "device": "cuda"}
        assert not evaluate.ctx.is_finished and evaluate.ctx.killed_retries == 0
    assert "out of memory at batch_size 4: retrying with batch_size 2" in report_lines(evaluate.node)

    finished_job(evaluate, codes.ERROR_RUNNER_FAILED.status, cuda)
    assert evaluate.inspect_process() == EvaluateBaseWorkChain.exit_codes.ERROR_OUT_OF_MEMORY_AT_BATCH_ONE
    assert evaluate.ctx.inputs.settings["batch_size"] == 1


def test_other_runner_failure_is_not_taken_for_out_of_memory(evaluate):
    codes = EvaluateBaseWorkChain._process_class.exit_codes
    finished_job(evaluate, codes.ERROR_RUNNER_FAILED.status, "The runner failed: evaluation failed: KeyError: 'x'")
    assert evaluate.inspect_process() == EvaluateBaseWorkChain.exit_codes.ERROR_UNHANDLED_FAILURE
    assert evaluate.ctx.inputs.settings.get_dict()["batch_size"] == 4  # untouched


@pytest.mark.parametrize("label", ["ERROR_SCHEDULER_OUT_OF_WALLTIME", "ERROR_SCHEDULER_NODE_FAILURE",
                                   "ERROR_MISSING_OUTPUT"])
def test_killed_job_is_retried_once_unchanged(evaluate, label):
    status = EvaluateBaseWorkChain._process_class.exit_codes[label].status
    settings = evaluate.ctx.inputs.settings
    finished_job(evaluate, status, "The runner wrote no predictions.npz: see runner.log.")
    assert evaluate.inspect_process().status == 0
    assert evaluate.ctx.inputs.settings is settings and evaluate.ctx.killed_retries == 1
    assert "the job was killed: retrying it once, unchanged" in report_lines(evaluate.node)

    finished_job(evaluate, status)
    assert evaluate.inspect_process() == EvaluateBaseWorkChain.exit_codes.ERROR_KILLED_AFTER_RETRY
    assert evaluate.ctx.is_finished


def test_killed_finetune_is_retried_once_then_divergence_exhausts(codes, registry_models, copper):
    inputs = {"code": codes["runner"], "base_model": registry_models["chgnet-0.3.0"], "training": copper}
    # 1 try + 3 halvings + 1 killed retry: the default leaves room for all of them
    assert FinetuneBaseWorkChain.spec().inputs["max_iterations"].default().value == 5
    process = instantiate(FinetuneBaseWorkChain, {"finetune": inputs})
    job_codes = FinetuneBaseWorkChain._process_class.exit_codes
    finished_job(process, job_codes.ERROR_SCHEDULER_OUT_OF_MEMORY.status)
    assert process.inspect_process().status == 0
    assert "parameters" not in process.ctx.inputs and process.ctx.killed_retries == 1

    # no learning rate given: the halving starts from the family's default (CHGNet: 1e-3)
    for expected in (5e-4, 2.5e-4, 1.25e-4):
        finished_job(process, job_codes.ERROR_TRAINING_DIVERGED.status, "the training diverged")
        assert process.inspect_process().status == 0
        assert process.ctx.inputs.parameters == {"learning_rate": pytest.approx(expected)}
    finished_job(process, job_codes.ERROR_TRAINING_DIVERGED.status, "the training diverged")
    exit_code = process.inspect_process()
    assert exit_code.status == FinetuneBaseWorkChain.exit_codes.ERROR_TRAINING_DIVERGED_AFTER_RETRIES.status
    assert "last 0.000125" in exit_code.message and "lower `learning_rate` further" in exit_code.message
    assert "training diverged at lr 0.001: retrying with lr 0.0005" in report_lines(process.node)


@pytest.mark.parametrize("process_class", [RelaxBaseWorkChain, MlipNebBaseWorkChain])
def test_not_converged_optimisation_ends_without_retry(codes, registry_models, copper, process_class):
    structures = {RelaxBaseWorkChain: {"structures": copper},
                  MlipNebBaseWorkChain: {"images": copper}}[process_class]
    inputs = {"code": codes["runner"], "model": registry_models["chgnet-0.3.0"], **structures}
    process = instantiate(process_class, {process_class._namespace: inputs})
    status = process_class._process_class.exit_codes.ERROR_NOT_CONVERGED.status
    node = finished_job(process, status, "Not converged (outputs are stored): frames [1]")
    exit_code = process.inspect_process()
    assert exit_code.status == process_class.exit_codes.ERROR_NOT_CONVERGED.status
    assert exit_code.message.endswith("The job said: Not converged (outputs are stored): frames [1]")
    assert process.ctx.is_finished and process.ctx.iteration == 1
    assert failure_reason(node) == "[401] Not converged (outputs are stored): frames [1]"


# ------------------------------------------------------------------- a fine-tuning study with a diverging learning rate

#: copper_frames(STUDY_LATTICE) split with seed 0 (test 1/4, validation 1/4): train a = 3.60, 3.70 Å,
#: validation a = 3.55 Å. Measured (2 epochs, batch 1): CHGNet 0.3.0 diverges at lr 20 to 64, trains at 12 and below.
STUDY_LATTICE = (3.55, 3.60, 3.65, 3.70)


@pytest.mark.mlip
def test_study_retries_a_diverged_finetune_with_a_lower_learning_rate(codes, registry_models):
    from aiida_reactmlip.workflows.finetune_study import FinetuneStudyWorkChain

    base = registry_models["chgnet-0.3.0"]
    pool = LabelledDatasetData.from_atoms(copper_frames(STUDY_LATTICE)).store()
    hyperparameters = {"learning_rate": 20.0, "epochs": 2, "batch_size": 1, "num_threads": 1}
    results, node = run_get_node(
        FinetuneStudyWorkChain, base_models={"chgnet": base}, dataset=pool, budgets=orm.List([0, 2]),
        split_parameters=orm.Dict({"test_fraction": 0.25, "validation_fraction": 0.25, "seed": 0}),
        hyperparameters={"chgnet": orm.Dict(hyperparameters)}, runner_code=codes["runner"],
    )
    assert node.is_finished_ok, node.exit_message
    restart = node.base.links.get_outgoing(link_label_filter="finetune_chgnet_b2").one().node
    assert restart.process_label == "FinetuneBaseWorkChain" and restart.is_finished_ok
    jobs = sorted(restart.called, key=lambda child: child.ctime)
    assert [job.inputs.parameters["learning_rate"] for job in jobs] == [20.0, 10.0]
    assert [job.exit_status for job in jobs] == [
        FinetuneBaseWorkChain._process_class.exit_codes.ERROR_TRAINING_DIVERGED.status, 0]
    assert jobs[0].inputs.validation.uuid == jobs[1].inputs.validation.uuid  # the validation split, both times
    model = results["models"]["chgnet"]["budget_2"]
    assert model.creator.uuid == jobs[1].uuid and model.base_model_uuid == base.uuid
    assert results["training_sets"]["budget_2"].uuid == jobs[1].inputs.training.uuid
    # the retried model is the one the learning curve evaluated
    assert results["metrics"]["chgnet"]["budget_2"]["model_uuid"] == model.uuid
    assert "training diverged at lr 20: retrying with lr 10" in report_lines(restart)


@pytest.mark.parametrize("workchain", [FinetuneBaseWorkChain, EvaluateBaseWorkChain, RelaxBaseWorkChain])
def test_a_job_without_remote_folder_does_not_fail_its_workchain(workchain):
    """aiida-core 2.9.4 finishes a CalcJob ok without ``remote_folder`` when a daemon worker died between its
    upload and its submission (docs/reliability.md, measured by the daemon-faults scenario): the restart
    WorkChains pass its results on instead of failing with exit 11; the CalcJob's own spec is unchanged."""
    assert workchain.spec().outputs["remote_folder"].required is False
    assert workchain._process_class.spec().outputs["remote_folder"].required is True
    required = {name for name, port in workchain.spec().outputs.items() if port.required}
    job_required = {name for name, port in workchain._process_class.spec().outputs.items() if port.required}
    assert required == job_required - {"remote_folder"}  # every other output the job must give still counts
