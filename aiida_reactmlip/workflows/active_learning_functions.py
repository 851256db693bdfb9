"""Calcfunctions of ``reactmlip.active_learning``: the candidate pool (start frames, rattles), the selection,
the structures to label, bootstrap resamples and the loop's summary. Forces in eV/Å, lengths in Å."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.metrics.learning_curves import REACTIVE_METRICS, reactive_values


def split_forces(forces: np.ndarray, n_atoms) -> list[np.ndarray]:
    """Concatenated forces (sum n_atoms, 3) -> one (n_atoms_i, 3) array per frame."""
    offsets = np.concatenate([[0], np.cumsum(np.asarray(n_atoms, dtype=int))])
    return [np.asarray(forces[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1)]


def round_key(index: int) -> str:
    """``round_03`` for round 3: the prefix of the loop's link labels and outputs of that round."""
    return f"round_{index:02d}"


@calcfunction
def select_candidates(pool: LabelledDatasetData, parameters: orm.Dict, **predictions: orm.ArrayData) -> dict:
    """Pick pool frames to label: ``selection.select`` with ``parameters`` (``strategy``, ``k``, ``seed``,
    ``already_selected``: pool indices labelled before, never picked again; ``include``: pool indices
    labelled whatever the strategy, listed first, e.g. the barrier loop's saddle check) and, for committee
    strategies, the committee's ``predictions`` (one ArrayData per member, forces in eV/Å).

    Outputs ``selected`` (List of pool indices, in selection order) and ``scores`` (Dict: the strategy,
    the per-frame committee force standard deviation in eV/Å when a committee was given).
    """
    from aiida_reactmlip import selection

    params = parameters.get_dict()
    images = pool.to_atoms()
    committee_forces = None
    scores: dict = {"strategy": params["strategy"], "k": int(params["k"]), "seed": int(params["seed"]),
                    "n_pool": len(images)}
    if predictions:
        committee_forces = [
            split_forces(node.get_array("forces"), node.get_array("n_atoms")) for _, node in sorted(predictions.items())
        ]
        std = selection.committee_force_std(committee_forces)
        scores["committee_force_std"] = [float(v) for v in np.asarray(std, dtype=float).ravel()]
    include = [int(i) for i in params.get("include", [])]
    selected = include + [int(i) for i in selection.select(
        params["strategy"],
        int(params["k"]),
        pool_images=images,
        committee_forces=committee_forces,
        already_selected=list(params.get("already_selected", [])) + include,
        seed=int(params["seed"]),
    )] if int(params["k"]) > 0 else include
    scores["selected"] = selected
    return {"selected": orm.List(selected), "scores": orm.Dict(scores)}


@calcfunction
def structures_to_dataset(**structures: orm.StructureData) -> LabelledDatasetData:
    """Unlabelled start frames (a dataset) from StructureData, in key order; the keys become frame names."""
    images = []
    for key, structure in sorted(structures.items()):
        atoms = structure.get_ase()
        atoms.info = {"name": key, **{k: v for k, v in structure.base.extras.all.items()
                                      if isinstance(v, (str, int, float, bool)) and not k.startswith("_")}}
        images.append(atoms)
    return LabelledDatasetData.from_atoms(images)


@calcfunction
def rattle_dataset(dataset: LabelledDatasetData, parameters: orm.Dict) -> LabelledDatasetData:
    """``n`` rattled copies of every frame of ``dataset`` (Gaussian, ``stdev`` Å per component, ``seed``);
    labels dropped (they are candidates for DFT)."""
    from aiida_reactmlip.generate.rattle import rattle

    params = {"n": 2, "stdev": 0.05, "seed": 0, **parameters.get_dict()}
    images = []
    for index, atoms in enumerate(dataset.frames.to_atoms()):
        atoms.calc = None
        info = {k: v for k, v in atoms.info.items() if k not in ("energy", "stress", "source_uuid")}
        atoms.info = info
        for new in rattle(atoms, int(params["n"]), float(params["stdev"]), seed=int(params["seed"]) + index,
                          name=str(info.get("name", f"start-{index}"))):
            new.info.setdefault("group", f"rattle-{info.get('name', index)}")
            images.append(new)
    return LabelledDatasetData.from_atoms(images)


@calcfunction
def pool_structures(pool: LabelledDatasetData, selected: orm.List) -> dict:
    """One StructureData per selected pool frame (keys ``frame_<pool index>``), for DFT labelling."""
    frames = pool.frames
    result = {}
    for index in selected.get_list():
        atoms = frames.subset([index]).to_atoms()[0]
        atoms.calc = None
        result[f"frame_{index:04d}"] = orm.StructureData(ase=atoms)
    return result


@calcfunction
def bootstrap_indices(n_frames: orm.Int, seed: orm.Int) -> orm.List:
    """A bootstrap resample (with replacement, then made unique and sorted) of ``n_frames`` frame indices."""
    rng = np.random.default_rng(int(seed.value))
    n = int(n_frames.value)
    picked = sorted({int(i) for i in rng.integers(0, n, size=n)})
    return orm.List(picked)


@calcfunction
def make_summary(info: orm.Dict, **nodes: orm.Data) -> orm.Dict:
    """The error curve of the loop: one row per round from the round's ``metrics_<ii>`` (compute_metrics
    output on the validation set), ``test_metrics_<ii>`` (on the test set, when the loop has one),
    ``selected_<ii>`` (List) and ``labels_<ii>`` (dataset) nodes, with ``info`` (loop settings, stop reason,
    wall seconds per round). Errors in eV/Å (forces) and eV/atom (energies); the reactive errors the sets
    allow (``barrier_mae``, ``reaction_energy_mae``, ``adsorption_energy_mae``, ``scan_energy_mae``, eV; on
    the test set prefixed ``test_``) per row, and as curves where every round has them."""
    data = info.get_dict()
    rows = []
    for row in data.pop("rounds"):
        key = f"{row['round']:02d}"
        metrics = nodes[f"metrics_{key}"].get_dict()
        row = dict(row)
        row["force_mae"] = metrics.get("force_mae")
        row["energy_mae_per_atom"] = metrics.get("energy_mae_per_atom")
        row["force_rmse"] = metrics.get("force_rmse")
        row["metrics_uuid"] = nodes[f"metrics_{key}"].uuid
        row.update(reactive_values(metrics))
        if f"test_metrics_{key}" in nodes:  # the test set: reported, never used to stop
            test = nodes[f"test_metrics_{key}"].get_dict()
            row["test_force_mae"] = test.get("force_mae")
            row["test_energy_mae_per_atom"] = test.get("energy_mae_per_atom")
            row.update({f"test_{name}": value for name, value in reactive_values(test).items()})
            row["test_metrics_uuid"] = nodes[f"test_metrics_{key}"].uuid
        if f"selected_{key}" in nodes:
            row["selected"] = nodes[f"selected_{key}"].get_list()
        labels = nodes.get(f"labels_{key}")
        row["n_labels"] = 0 if labels is None else int(labels.base.attributes.get("n_frames"))
        rows.append(row)
    data["rounds"] = rows
    data["n_labels"] = [r["n_labels"] for r in rows]
    data["force_mae"] = [r["force_mae"] for r in rows]
    data["energy_mae_per_atom"] = [r["energy_mae_per_atom"] for r in rows]
    if rows and all("test_force_mae" in r for r in rows):
        data["test_force_mae"] = [r["test_force_mae"] for r in rows]
        data["test_energy_mae_per_atom"] = [r["test_energy_mae_per_atom"] for r in rows]
    for name in (*REACTIVE_METRICS, *(f"test_{name}" for name in REACTIVE_METRICS)):
        if rows and all(name in r for r in rows):
            data[name] = [r[name] for r in rows]
    return orm.Dict(data)
