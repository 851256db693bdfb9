"""Metrics that never waste a finished run: one frame per group still gets force metrics and a note."""

import numpy as np
import pytest

from aiida_reactmlip.metrics.errors import NoEnergyComparison, compare, energy_metrics


def test_energy_metrics_still_refuses_with_the_reason():
    with pytest.raises(NoEnergyComparison, match="at least two frames") as info:
        energy_metrics([0.0, 1.0], [0.0, 1.0], n_atoms=[2, 2], groups=["a", "b"])
    assert isinstance(info.value, ValueError)


def test_one_frame_per_group_gives_forces_and_a_note():
    rng = np.random.default_rng(0)
    dft = {"energies": np.array([-10.0, -20.0]), "forces": rng.normal(size=(5, 3))}
    pred = {"energies": np.array([-9.0, -21.0]), "forces": dft["forces"] + 0.1}
    out = compare(dft, pred, n_atoms=[2, 3], groups=["a", "b"])
    assert out["force_mae"] == pytest.approx(0.1)
    assert "energy_mae" not in out and out["n_frames_compared"] == 0 and out["n_frames_total"] == 2
    assert "one frame" in out["energy_note"] and "elemental_fit" in out["energy_note"] and "group" in out["energy_note"]
    assert out["energy_reference_key"] == "relative:min"


def test_a_real_error_is_still_an_error():
    dft = {"energies": np.array([0.0, 1.0]), "forces": np.zeros((4, 3))}
    with pytest.raises(ValueError, match="mixes compositions"):
        compare(dft, dft, n_atoms=[2, 2], numbers=[[1, 1], [8, 8]], groups=["g", "g"])


def test_compute_metrics_on_a_one_frame_dataset(aiida_profile):
    from aiida import orm

    from aiida_reactmlip.calculations.functions import compute_metrics
    from aiida_reactmlip.data.dataset import LabelledDatasetData
    from aiida_reactmlip.frames import Frames

    frames = Frames(numbers=[1, 1], positions=[[0, 0, 0], [0, 0, 0.74]], cells=[np.eye(3) * 8], pbc=[[True] * 3],
                    n_atoms=[2], energies=[-31.7], forces=[[0, 0, 0.5], [0, 0, -0.5]], info=[{"name": "h2"}])
    dataset = LabelledDatasetData(frames=frames).store()
    predictions = orm.ArrayData()
    predictions.set_array("energies", np.array([-6.8]))
    predictions.set_array("forces", np.array([[0, 0, 0.4], [0, 0, -0.4]]))
    predictions.set_array("stress", np.full((1, 6), np.nan))
    result, node = compute_metrics.run_get_node(dataset, predictions.store(), orm.Dict({"energy_reference": "relative:min"}))
    assert node.is_finished_ok
    values = result.get_dict()
    assert values["force_mae"] == pytest.approx(0.2 / 6)  # two of six components off by 0.1 eV/Å
    assert "energy_mae" not in values and "one frame" in values["energy_note"]
