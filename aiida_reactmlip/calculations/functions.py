"""Calcfunctions: provenance-tracked assembly of datasets and metrics from stored nodes."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.frames import Frames
from aiida_reactmlip.metrics import compare
from aiida_reactmlip.metrics.by_system import frame_groups, system_metrics
from aiida_reactmlip.metrics.learning_curves import scan_energy_errors

#: 1 eV/Å^3 in GPa.
EV_PER_A3_IN_GPA = 160.21766208


def qe_stress_to_ase_voigt(stress_gpa: np.ndarray) -> np.ndarray:
    """Convert a pw.x stress tensor (3x3, GPa, positive = compressive) to ASE Voigt (eV/Å^3, xx yy zz yz xz xy).

    ASE's stress is the derivative of the energy with respect to strain per volume, the opposite
    sign of the pressure-like tensor that pw.x prints.
    """
    sigma = -np.asarray(stress_gpa, dtype=float) / EV_PER_A3_IN_GPA
    return np.array([sigma[0, 0], sigma[1, 1], sigma[2, 2], sigma[1, 2], sigma[0, 2], sigma[0, 1]])


def trajectory_forces(trajectory) -> np.ndarray | None:
    """The forces (eV/Å) of the last step of a pw.x ``output_trajectory``, or None when pw.x printed none."""
    if trajectory is None or "forces" not in trajectory.get_arraynames():
        return None
    forces = np.asarray(trajectory.get_array("forces"))
    return forces[-1] if len(forces) else None


def label_defect(parameters: dict, forces: np.ndarray | None, n_atoms: int) -> str | None:
    """Why a pw.x result must not become a label, or None when it may.

    A label needs an SCF that pw.x itself reports converged
    (``convergence_info.scf_conv.convergence_achieved`` in ``output_parameters``; a run stopped by
    ``electron_maxstep``, ``max_seconds`` or ``scf_must_converge = .false.`` says False), a finite energy (eV)
    and finite forces (eV/Å) for every atom.
    """
    scf = parameters.get("convergence_info", {}).get("scf_conv", {})
    if scf.get("convergence_achieved") is not True:
        if not scf:
            return "pw.x output has no SCF convergence record"
        return (f"SCF not converged (scf accuracy {scf.get('scf_error')} Ry after {scf.get('n_scf_steps')} "
                "step(s))")
    energy = parameters.get("energy")
    if energy is None or not np.isfinite(energy):
        return f"no finite total energy ({energy!r})"
    if forces is None:
        return "no forces in the pw.x output (tprnfor)"
    if np.shape(forces) != (n_atoms, 3) or not np.isfinite(forces).all():
        return f"forces of shape {np.shape(forces)} (expected ({n_atoms}, 3), finite)"
    return None


def frames_from_pw_outputs(structures, parameters, trajectories, infos) -> Frames:
    """Frames from pw.x outputs: energy (eV) from ``output_parameters``, forces (eV/Å) and stress from the
    trajectory.

    Refuses (ValueError naming the frames) any output that :func:`label_defect` rejects: an unconverged SCF is
    never stored as a label.
    """
    defects = {}
    for structure, params, trajectory, info in zip(structures, parameters, trajectories, infos):
        values = params.get_dict() if hasattr(params, "get_dict") else dict(params)
        defect = label_defect(values, trajectory_forces(trajectory), len(structure.sites))
        if defect:
            defects[str(info.get("name", info.get("key")))] = defect
    if defects:
        raise ValueError("not a DFT label: " + "; ".join(f"{name}: {why}" for name, why in defects.items()))
    atoms_list = []
    for structure, params, trajectory, info in zip(structures, parameters, trajectories, infos):
        atoms = structure.get_ase()
        atoms.info = {}
        atoms.info["energy"] = float(params["energy"])
        atoms.arrays["forces"] = trajectory_forces(trajectory).astype(float)
        if "stress" in trajectory.get_arraynames():
            atoms.info["stress"] = qe_stress_to_ase_voigt(np.asarray(trajectory.get_array("stress"))[-1])
        for key, value in info.items():
            atoms.info[key] = value
        atoms_list.append(atoms)
    return Frames.from_atoms(atoms_list)


@calcfunction
def build_labelled_dataset(frame_info: orm.Dict, **nodes) -> LabelledDatasetData:
    """Assemble a ``LabelledDatasetData`` from pw.x outputs.

    ``frame_info`` maps each frame key to its info (name, system, role, ...). ``nodes`` holds
    ``structure_KEY``, ``parameters_KEY`` and ``trajectory_KEY`` for every KEY of ``frame_info``.
    Each frame's ``source_uuid`` is the UUID of the pw.x calculation that produced the label.
    """
    info_by_key = frame_info.get_dict()
    structures, parameters, trajectories, infos = [], [], [], []
    for key, info in info_by_key.items():
        params = nodes[f"parameters_{key}"]
        creator = params.base.links.get_incoming(link_label_filter="output_parameters").all()
        source_uuid = creator[0].node.uuid if creator else params.uuid
        structures.append(nodes[f"structure_{key}"])
        parameters.append(params)
        trajectories.append(nodes[f"trajectory_{key}"])
        infos.append({**info, "source_uuid": source_uuid, "key": key})
    return LabelledDatasetData(frames=frames_from_pw_outputs(structures, parameters, trajectories, infos))


@calcfunction
def compute_metrics(
    dataset: LabelledDatasetData, predictions: orm.ArrayData, settings: orm.Dict, model: orm.Data | None = None
) -> orm.Dict:
    """Error metrics of MLIP ``predictions`` against the DFT labels of ``dataset``: energies, forces, stress,
    per system, the reactive quantities of its systems (barriers, adsorption energies) and, where it holds a
    bond scan, the stretch energy error (``scans``, ``scan_energy_mae`` in eV).

    ``settings``: ``energy_reference`` ('relative:min', 'relative:mean' or 'elemental_fit').
    Energies are never compared as raw totals (different DFT set-ups): see :mod:`aiida_reactmlip.metrics`.
    """
    frames = dataset.frames
    reference = settings.get_dict().get("energy_reference", "relative:min")
    dft = {"energies": frames.energies, "forces": frames.forces, "stress": frames.stress}
    pred = {
        "energies": predictions.get_array("energies"),
        "forces": predictions.get_array("forces"),
        "stress": predictions.get_array("stress"),
    }
    numbers = [frames.numbers[start : start + n] for start, n in zip(frames.offsets, frames.n_atoms)]
    train_mask = settings.get_dict().get("train_mask")
    if not np.isfinite(frames.stress).any():
        dft.pop("stress")
    result = compare(dft, pred, n_atoms=frames.n_atoms, groups=frame_groups(frames), reference=reference,
                     numbers=numbers, train_mask=train_mask)
    result.update(system_metrics(frames, pred, reference))
    scans = scan_energy_errors(frames.info, frames.energies, pred["energies"])
    if scans["scans"]:  # a bond scan: its stretch (dissociation) energy, the scan's reactive quantity
        result.update(scans)
    if model is not None:
        result.update({"model_name": model.model_name, "model_family": model.family, "model_uuid": model.uuid,
                       "model_sha256": model.sha256})
    result["dataset_uuid"] = dataset.uuid
    return orm.Dict(result)
