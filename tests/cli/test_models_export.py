"""`reactmlip models export PK [PATH]` and `reactmlip models show PK`."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
from aiida import orm
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from click.testing import CliRunner

from aiida_reactmlip.cli import cmd_root


def invoke(*args):
    return CliRunner().invoke(cmd_root, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "220"})


@pytest.fixture
def finetuned_like(tmp_path):
    """A base model node, a dataset, and a 'fine-tuned' model node pointing at both (files are random bytes)."""
    from aiida_reactmlip.data.dataset import LabelledDatasetData
    from aiida_reactmlip.data.model import MlipModelData

    rng = np.random.default_rng()
    base_file, tuned_file = tmp_path / "base.pth", tmp_path / "tuned.pth"
    base_file.write_bytes(rng.bytes(3000))
    tuned_file.write_bytes(rng.bytes(5000))
    atoms = Atoms("CuH", positions=[[0, 0, 0], [0, 0, 1.6]], cell=[7, 7, 7], pbc=True)
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((2, 3)))
    dataset = LabelledDatasetData.from_atoms([atoms, atoms.copy()]).store()
    base = MlipModelData(file=base_file, family="chgnet", model_name="base-x", version="1", elements=["Cu", "H", "O"],
                         cutoff=5.0, dtype="float32", source="test").store()
    tuned = MlipModelData(file=tuned_file, filename="base-x-ft-1234abcd.pth", family="chgnet",
                          model_name="base-x-ft-1234abcd", version="1", elements=["Cu", "H", "O"], cutoff=5.0,
                          dtype="float32", source="finetune", base_model_uuid=base.uuid,
                          training_dataset_uuid=dataset.uuid).store()
    return {"base": base, "tuned": tuned, "dataset": dataset, "bytes": tuned_file.read_bytes()}


def test_export_writes_the_file_and_prints_sha256_and_provenance(tmp_path, finetuned_like, monkeypatch):
    tuned, base, dataset = finetuned_like["tuned"], finetuned_like["base"], finetuned_like["dataset"]
    target = tmp_path / "out" / "model.pth"
    result = invoke("models", "export", tuned.pk, target)
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == finetuned_like["bytes"]
    sha = hashlib.sha256(finetuned_like["bytes"]).hexdigest()
    assert re.search(rf"^sha256:\s+{sha}$", result.output, re.MULTILINE)
    assert f"base model:       base-x (chgnet, pk {base.pk}, sha256 {base.sha256[:16]})" in result.output
    assert f"training dataset: pk {dataset.pk}, 2 frame(s), elements Cu, H" in result.output

    # default PATH: the model's file name in the current directory; an existing file is not overwritten
    monkeypatch.chdir(tmp_path)
    assert invoke("models", "export", tuned.uuid).exit_code == 0
    assert (tmp_path / "base-x-ft-1234abcd.pth").read_bytes() == finetuned_like["bytes"]
    again = invoke("models", "export", tuned.pk)
    assert again.exit_code != 0 and "exists: give another PATH or --force" in again.output
    (tmp_path / "base-x-ft-1234abcd.pth").write_bytes(b"stale")
    assert invoke("models", "export", tuned.pk, "--force").exit_code == 0
    assert (tmp_path / "base-x-ft-1234abcd.pth").read_bytes() == finetuned_like["bytes"]
    # a directory gets the file under the model's name
    (tmp_path / "dir").mkdir()
    assert invoke("models", "export", tuned.pk, tmp_path / "dir").exit_code == 0
    assert (tmp_path / "dir" / "base-x-ft-1234abcd.pth").read_bytes() == finetuned_like["bytes"]


def test_export_and_show_refuse_what_is_not_a_model(finetuned_like):
    dataset = finetuned_like["dataset"]
    for command in ("export", "show"):
        result = invoke("models", command, dataset.pk)
        assert result.exit_code != 0
        assert f"node {dataset.pk} is a LabelledDatasetData, not a model" in result.output
    missing = orm.QueryBuilder().append(orm.Node, project="id").order_by({orm.Node: {"id": "desc"}}).first()[0] + 1000
    result = invoke("models", "export", missing)
    assert result.exit_code != 0 and f"no node with pk or UUID '{missing}'" in result.output


def test_show_lists_metadata_and_provenance(finetuned_like):
    tuned, base = finetuned_like["tuned"], finetuned_like["base"]
    result = invoke("models", "show", tuned.pk)
    assert result.exit_code == 0, result.output
    assert f"MlipModelData<{tuned.pk}> base-x-ft-1234abcd" in result.output
    assert f"sha256:           {tuned.sha256}" in result.output
    assert "file:             base-x-ft-1234abcd.pth (5000 bytes)" in result.output
    assert "elements:         3: Cu, H, O" in result.output and "source:           finetune" in result.output
    assert f"base model:       base-x (chgnet, pk {base.pk}" in result.output
    base_show = invoke("models", "show", base.pk).output
    assert "base model:       none (not a fine-tuned model)" in base_show
    assert "training dataset: none recorded" in base_show
