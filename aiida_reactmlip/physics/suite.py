"""All physics checks of one model in one call: what the ``physics`` runner task runs (pure ASE/numpy).

:func:`run_checks` takes a calculator, the frames by name and complete settings (every key of
``aiida_reactmlip.runner.contract.PHYSICS_SETTINGS``; the entries of ``nve``, ``ramp`` and
``reactions`` complete too) and returns ``(results, arrays)``:

- ``results``: JSON-ready numbers: ``diatomic`` {pair: metrics}, ``nve`` [one entry per frame and
  temperature], ``ramp`` [one per frame], ``reactions`` [one per reaction], ``summary``
  (:func:`summarize`) and ``seconds`` per check;
- ``arrays``: the curves and traces, flat names for one ``.npz`` file: ``diatomic_<A>_<B>_<key>``
  (distances Å, energies eV, forces / fd_forces eV/Å), ``nve_<k>_<key>`` (times_ps, etot, epot,
  ekin eV, temperature K) and ``ramp_<k>_<key>`` (times_ps, target_temperature, temperature K,
  epot eV, min_distance Å, n_fragments).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
from ase import Atoms

from .diatomic import curve_metrics, diatomic_curve, diatomic_pairs
from .dynamics import nve_run, relax, temperature_ramp
from .reaction import reaction_energy

__all__ = ["array_key", "run_checks", "summarize"]

_NVE_TRACES = ("times_ps", "etot", "epot", "ekin", "temperature")
_RAMP_TRACES = ("times_ps", "target_temperature", "temperature", "epot", "min_distance", "n_fragments")


def array_key(*parts) -> str:
    """A flat array name from ``parts`` (``"H-Cu"`` becomes ``"H_Cu"``): letters, digits and underscores."""
    return "_".join(str(p).replace("-", "_").replace(".", "p") for p in parts)


def _store_run(results: dict, arrays: dict, kind: str, traces, run: dict, frame: str, atoms, fields: dict) -> None:
    """Append one MD run of ``kind`` (nve, ramp) to ``results`` and its ``traces`` to ``arrays``."""
    k = len(results[kind])
    for key in traces:
        arrays[array_key(kind, k, key)] = run[key]
    results[kind].append({"frame": frame, "formula": atoms.get_chemical_formula(), "n_atoms": run["n_atoms"], **fields})


def _plain(value):
    """``value`` with numpy scalars and arrays turned into Python numbers and lists (for JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_checks(
    calc, frames: Mapping[str, Atoms], settings: Mapping, log: Callable[[str], None] | None = None
) -> tuple[dict, dict]:
    """Run the diatomic, NVE, ramp and reaction checks that ``settings`` asks for (see the module)."""
    log = log or (lambda message: None)
    results: dict = {"diatomic": {}, "nve": [], "ramp": [], "reactions": [], "seconds": {}}
    arrays: dict[str, np.ndarray] = {}

    def frame(name: str) -> Atoms:
        if name not in frames:
            raise KeyError(f"no frame named {name!r}; frames: {', '.join(frames)}")
        return frames[name]

    start = time.perf_counter()
    for a, b in (
        diatomic_pairs(settings["elements"], settings["heteronuclear"]) if settings["elements"] else []
    ):
        curve = diatomic_curve(
            calc,
            a,
            b,
            settings["distances"],
            box=settings["box"],
            pbc=settings["pbc"],
            fd_step=settings["fd_step"],
        )
        iso = curve["isolated_energies"]
        metrics = curve_metrics(
            curve["distances"],
            curve["energies"],
            curve["forces"],
            fd_forces=curve["fd_forces"],
            isolated_energy_sum=iso[a] + iso[b],
        )
        metrics["isolated_energies"] = iso
        results["diatomic"][curve["pair"]] = metrics
        for key in ("distances", "energies", "forces", "fd_forces"):
            if curve[key] is not None:
                arrays[array_key("diatomic", curve["pair"], key)] = curve[key]
        log(f"diatomic {curve['pair']}: r_min {metrics['r_min']:.3f} Å, depth {metrics['well_depth']:.3f} eV")
    results["seconds"]["diatomic"] = time.perf_counter() - start

    relaxed: dict[str, tuple[Atoms, dict]] = {}

    def start_frame(name: str) -> tuple[Atoms, dict | None]:
        if settings["relax_steps"] <= 0:
            return frame(name), None
        if name not in relaxed:
            relaxed[name] = relax(
                calc, frame(name), fmax=settings["relax_fmax"], steps=settings["relax_steps"]
            )
        return relaxed[name]

    bonds = {"bond_factor": settings["bond_factor"], "break_factor": settings["break_factor"]}
    start = time.perf_counter()
    for entry in settings["nve"]:
        atoms, relax_info = start_frame(entry["frame"])
        for temperature in entry["temperatures_K"]:
            t0 = time.perf_counter()
            run = nve_run(calc, atoms, temperature, timestep_fs=entry["timestep_fs"], duration_ps=entry["duration_ps"],
                          seed=settings["seed"], sample_every=settings["sample_every"], **bonds)
            _store_run(
                results, arrays, "nve", _NVE_TRACES, run, entry["frame"], atoms,
                {
                    "temperature_K": float(temperature),
                    "timestep_fs": run["timestep_fs"],
                    "duration_ps": float(entry["duration_ps"]),
                    "steps_done": run["steps_done"],
                    "n_steps": run["n_steps"],
                    "stopped_early": run["stopped_early"],
                    "stop_reason": run["stop_reason"],
                    "drift_meV_per_atom_per_ps": run["drift_meV_per_atom_per_ps"],
                    "spread_meV_per_atom": run["spread_meV_per_atom"],
                    "max_deviation_meV_per_atom": run["max_deviation_meV_per_atom"],
                    "mean_temperature_K": float(np.mean(run["temperature"])),
                    "min_distance": run["min_distance"],
                    "bonds": {
                        key: run["bonds"][key]
                        for key in (
                            "n_broken",
                            "n_formed",
                            "broken_by_pair",
                            "formed_by_pair",
                            "n_bonds_start",
                            "n_bonds_end",
                        )
                    },
                    "relax": relax_info,
                    "seconds": time.perf_counter() - t0,
                }
            )
            log(
                f"nve {entry['frame']} {temperature:g} K: drift {run['drift_meV_per_atom_per_ps']} meV/atom/ps"
            )
    results["seconds"]["nve"] = time.perf_counter() - start

    start = time.perf_counter()
    for entry in settings["ramp"]:
        atoms, relax_info = start_frame(entry["frame"])
        t0 = time.perf_counter()
        ramp = temperature_ramp(
            calc, atoms, t_start=entry["t_start"], t_end=entry["t_end"], duration_ps=entry["duration_ps"],
            timestep_fs=entry["timestep_fs"], friction_per_fs=settings["friction_per_fs"], seed=settings["seed"],
            check_every=settings["check_every"], overlap_distance=settings["overlap_distance"],
            allowed_breaks=entry["allowed_breaks"], **bonds,
        )
        _store_run(
            results, arrays, "ramp", _RAMP_TRACES, ramp, entry["frame"], atoms,
            {
                **{
                    key: ramp[key]
                    for key in (
                        "stable",
                        "reason",
                        "t_reached",
                        "kinetic_temperature_at_stop",
                        "time_ps",
                        "steps_done",
                        "n_steps",
                        "t_start",
                        "t_end",
                        "timestep_fs",
                        "friction_per_fs",
                        "n_fragments_start",
                        "broken_not_allowed",
                    )
                },
                "allowed_breaks": entry["allowed_breaks"],
                "bonds": {
                    key: ramp["bonds"][key]
                    for key in ("n_broken", "n_formed", "broken_by_pair", "formed_by_pair")
                },
                "relax": relax_info,
                "seconds": time.perf_counter() - t0,
            }
        )
        log(f"ramp {entry['frame']}: {ramp['reason'] or 'stable'} at {ramp['t_reached']:.0f} K")
    results["seconds"]["ramp"] = time.perf_counter() - start

    start = time.perf_counter()
    for entry in settings["reactions"]:
        result = reaction_energy(
            calc,
            frame(entry["initial"]),
            frame(entry["final"]),
            dft_reaction_energy=entry["dft_reaction_energy"],
            sign_tolerance=settings["sign_tolerance"],
        )
        results["reactions"].append(
            {
                "name": entry["name"],
                "initial": entry["initial"],
                "final": entry["final"],
                "dft_source": entry.get("dft_source"),
                **result,
            }
        )
        log(
            f"reaction {entry['name']}: {result['reaction_energy']:+.3f} eV (DFT {result['dft_reaction_energy']})"
        )
    results["seconds"]["reaction"] = time.perf_counter() - start
    results["summary"] = summarize(results)
    return _plain(results), arrays


def summarize(results: Mapping) -> dict:
    """One row of numbers for a leaderboard, from :func:`run_checks`' results (None where a check did not run).

    - ``diatomic_pairs``; ``diatomic_repulsive`` (pairs with ``short_range_repulsion``);
      ``diatomic_single_well`` (pairs whose force changes sign exactly once);
      ``diatomic_max_inflections``; ``diatomic_max_force_energy_dev`` (eV/Å).
    - ``nve_max_abs_drift`` (meV/atom/ps) and ``nve_max_spread`` (meV/atom) over all NVE runs;
      ``nve_bonds_broken`` and ``nve_bonds_formed`` summed over them; ``nve_stopped_early`` (runs).
    - ``ramp_min_t_reached`` (K, over the ramped frames) and ``ramp_failures`` ({frame: reason}).
    - ``reaction_sign_agrees`` / ``reaction_with_dft`` (counts) and ``reaction_max_abs_error`` (eV).
    """
    diatomic = list(results.get("diatomic", {}).values())
    nve = list(results.get("nve", []))
    ramp = list(results.get("ramp", []))
    reactions = list(results.get("reactions", []))
    dev = [m["force_energy_max_dev"] for m in diatomic if m.get("force_energy_max_dev") is not None]
    drifts = [abs(r["drift_meV_per_atom_per_ps"]) for r in nve if r["drift_meV_per_atom_per_ps"] is not None]
    spreads = [r["spread_meV_per_atom"] for r in nve if r["spread_meV_per_atom"] is not None]
    with_dft = [r for r in reactions if r.get("dft_reaction_energy") is not None]
    return {
        "diatomic_pairs": len(diatomic),
        "diatomic_repulsive": sum(bool(m["short_range_repulsion"]) for m in diatomic) if diatomic else None,
        "diatomic_single_well": sum(m.get("n_force_flips") == 1 for m in diatomic) if diatomic else None,
        "diatomic_max_inflections": max((m["n_inflections"] for m in diatomic), default=None),
        "diatomic_max_force_energy_dev": max(dev, default=None),
        "nve_runs": len(nve),
        "nve_max_abs_drift": max(drifts, default=None),
        "nve_max_spread": max(spreads, default=None),
        "nve_bonds_broken": sum(r["bonds"]["n_broken"] for r in nve) if nve else None,
        "nve_bonds_formed": sum(r["bonds"]["n_formed"] for r in nve) if nve else None,
        "nve_stopped_early": sum(bool(r["stopped_early"]) for r in nve) if nve else None,
        "ramp_min_t_reached": min((r["t_reached"] for r in ramp), default=None),
        "ramp_failures": {r["frame"]: r["reason"] for r in ramp if r["reason"]},
        "reactions": len(reactions),
        "reaction_with_dft": len(with_dft),
        "reaction_sign_agrees": sum(bool(r["sign_agrees"]) for r in with_dft) if with_dft else None,
        "reaction_max_abs_error": max((abs(r["error"]) for r in with_dft), default=None),
        "reaction_energies": {r["name"]: r["reaction_energy"] for r in reactions},
    }
