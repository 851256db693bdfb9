"""Active-learning loop metrics (pure: numbers in, numbers out; no AiiDA).

An *error curve* is a sequence of (number of DFT labels used, error) points, one per round of a
loop (or per budget of a random baseline): errors are force MAE in eV/Å or energy MAE in eV/atom on
a fixed DFT validation set. These functions answer "how many DFT labels did it take to reach the
target?" and "did the loop need fewer than random selection with the same budget and seeds?", and
decide when a loop stops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "BARRIER_CHECK_KEYS",
    "STOP_REASONS",
    "area_under_curve",
    "check_curve",
    "compare_to_random",
    "labels_this_round",
    "labels_to_target",
    "mean_curve",
    "saddle_check",
    "saddle_image",
    "stop_reason",
]

#: Why a loop stops, in the order they are checked.
STOP_REASONS = ("barrier", "target", "budget", "max_rounds", "pool_exhausted")


def check_curve(n_labels: Sequence[float], errors: Sequence[float], name: str = "curve") -> tuple[np.ndarray, np.ndarray]:
    """Return the curve as float arrays after checking it: same lengths, at least one point, label counts
    non-negative and strictly increasing, errors finite and non-negative. Raises ``ValueError`` naming ``name``."""
    x = np.asarray(n_labels, dtype=float).ravel()
    y = np.asarray(errors, dtype=float).ravel()
    if x.size != y.size:
        raise ValueError(f"{name}: {x.size} label counts but {y.size} errors; give one error per label count")
    if x.size == 0:
        raise ValueError(f"{name}: empty curve; give at least one (labels, error) point")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError(f"{name}: label counts must be finite and >= 0, got {x.tolist()}")
    if np.any(np.diff(x) <= 0):
        raise ValueError(f"{name}: label counts must increase strictly from point to point, got {x.tolist()}")
    if not np.all(np.isfinite(y)) or np.any(y < 0):
        raise ValueError(f"{name}: errors must be finite and >= 0, got {y.tolist()}")
    return x, y


def labels_to_target(
    n_labels: Sequence[float], errors: Sequence[float], target: float, *, sustained: bool = False
) -> int | None:
    """The number of DFT labels at which the error first reaches ``target`` (error <= target), or None.

    ``sustained=True``: the first point from which the error stays at or below the target for every
    later point of the curve (a fine-tune is noisy: a single lucky round does not count). Units: the
    errors' and the target's (e.g. eV/Å for a force MAE).
    """
    x, y = check_curve(n_labels, errors)
    if not math.isfinite(target) or target < 0:
        raise ValueError(f"target must be a finite error >= 0, got {target!r}")
    below = y <= target
    if not below.any():
        return None
    if not sustained:
        return int(x[int(np.argmax(below))])
    if not below[-1]:
        return None
    last_above = np.nonzero(~below)[0]
    start = 0 if last_above.size == 0 else int(last_above[-1]) + 1
    return int(x[start])


def area_under_curve(n_labels: Sequence[float], errors: Sequence[float], upto: float | None = None) -> float:
    """Mean error over the label range [first point, ``upto``] by the trapezoid rule (units of the errors).

    A lower value means a lower error on average over the budget: a summary that does not depend on a
    target. ``upto`` defaults to the last point; it may not lie beyond the curve.
    """
    x, y = check_curve(n_labels, errors)
    upto = float(x[-1]) if upto is None else float(upto)
    if upto > x[-1] + 1e-12 or upto < x[0]:
        raise ValueError(f"upto={upto} lies outside the curve's label range [{x[0]}, {x[-1]}]")
    if x.size == 1 or upto == x[0]:
        return float(y[0])
    grid = np.append(x[x < upto], upto)
    values = np.interp(grid, x, y)
    return float(np.trapezoid(values, grid) / (upto - x[0]))


def mean_curve(curves: Sequence[tuple[Sequence[float], Sequence[float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 0) of several curves over the label counts they all share.

    ``curves``: (n_labels, errors) per seed. Returns (n_labels, mean, std); label counts that are not in
    every curve are left out. Raises ``ValueError`` when the curves share no label count.
    """
    if not curves:
        raise ValueError("no curves to average")
    checked = [check_curve(x, y, f"curve {i}") for i, (x, y) in enumerate(curves)]
    common = set(checked[0][0].tolist())
    for x, _ in checked[1:]:
        common &= set(x.tolist())
    if not common:
        raise ValueError("the curves share no label count: run them with the same budgets")
    grid = np.array(sorted(common))
    stacked = np.array([[y[np.nonzero(x == n)[0][0]] for n in grid] for x, y in checked])
    return grid, stacked.mean(axis=0), stacked.std(axis=0)


def compare_to_random(
    loop: Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]] | Sequence[tuple[Sequence[float], Sequence[float]]],
    random: Sequence[tuple[Sequence[float], Sequence[float]]],
    target: float,
    *,
    sustained: bool = False,
) -> dict:
    """Labels the loop and random selection need to reach ``target``, per seed and for the mean curves.

    ``loop`` and ``random``: lists of (n_labels, errors) curves, one per seed (same seeds, same budget).
    Returns a JSON-able dict: ``target``; ``loop_labels``/``random_labels`` per seed (None: not reached
    within the budget); ``loop_labels_mean``/``random_labels_mean`` from the mean curves;
    ``loop_auc``/``random_auc`` (mean error over the shared label range); ``loop_wins``/``random_wins``/
    ``ties`` counted over seeds where at least one reached the target (reaching beats not reaching);
    ``budget`` (the largest label count both curves share); and ``verdict``, one sentence.
    """
    loop = list(loop)
    random = list(random)
    if not loop or not random:
        raise ValueError("give at least one loop curve and one random curve")
    if len(loop) != len(random):
        raise ValueError(f"{len(loop)} loop curve(s) but {len(random)} random curve(s): compare them seed by seed")
    loop_labels = [labels_to_target(x, y, target, sustained=sustained) for x, y in loop]
    random_labels = [labels_to_target(x, y, target, sustained=sustained) for x, y in random]
    loop_grid, loop_mean, loop_std = mean_curve(loop)
    random_grid, random_mean, random_std = mean_curve(random)
    shared = np.array(sorted(set(loop_grid.tolist()) & set(random_grid.tolist())))
    if shared.size == 0:
        raise ValueError("the loop and random curves share no label count: give them the same budgets")
    upto = float(shared[-1])
    start = float(shared[0])
    loop_sel = (loop_grid >= start) & (loop_grid <= upto)
    random_sel = (random_grid >= start) & (random_grid <= upto)
    wins = {"loop": 0, "random": 0, "ties": 0}
    for a, b in zip(loop_labels, random_labels):
        if a is None and b is None:
            continue
        if b is None or (a is not None and a < b):
            wins["loop"] += 1
        elif a is None or b < a:
            wins["random"] += 1
        else:
            wins["ties"] += 1
    loop_mean_labels = labels_to_target(loop_grid, loop_mean, target, sustained=sustained)
    random_mean_labels = labels_to_target(random_grid, random_mean, target, sustained=sustained)
    result = {
        "target": float(target),
        "sustained": bool(sustained),
        "n_seeds": len(loop),
        "budget": int(upto),
        "loop_labels": loop_labels,
        "random_labels": random_labels,
        "loop_labels_mean": loop_mean_labels,
        "random_labels_mean": random_mean_labels,
        "loop_auc": area_under_curve(loop_grid[loop_sel], loop_mean[loop_sel]),
        "random_auc": area_under_curve(random_grid[random_sel], random_mean[random_sel]),
        "loop_curve": {"n_labels": loop_grid.tolist(), "mean": loop_mean.tolist(), "std": loop_std.tolist()},
        "random_curve": {"n_labels": random_grid.tolist(), "mean": random_mean.tolist(), "std": random_std.tolist()},
        "loop_wins": wins["loop"],
        "random_wins": wins["random"],
        "ties": wins["ties"],
    }
    result["verdict"] = _verdict(loop_mean_labels, random_mean_labels, target, int(upto))
    return result


def _verdict(loop_labels: int | None, random_labels: int | None, target: float, budget: int) -> str:
    if loop_labels is None and random_labels is None:
        return f"neither the loop nor random selection reached {target:g} within {budget} labels (mean curves)"
    if random_labels is None:
        return f"the loop reached {target:g} with {loop_labels} labels; random selection did not within {budget}"
    if loop_labels is None:
        return f"random selection reached {target:g} with {random_labels} labels; the loop did not within {budget}"
    if loop_labels < random_labels:
        return f"the loop reached {target:g} with {loop_labels} labels, random selection needed {random_labels}"
    if loop_labels > random_labels:
        return (f"the loop did not beat random: it needed {loop_labels} labels to reach {target:g}, "
                f"random selection {random_labels}")
    return f"tie: the loop and random selection both reached {target:g} with {loop_labels} labels"


def labels_this_round(k: int, n_labels: int, max_dft_labels: int | None = None, pool_left: int | None = None) -> int:
    """How many configurations to label in the next round: ``k``, less where the DFT budget or the
    unlabelled candidates left do not allow it (0: nothing more can be labelled)."""
    if int(k) != k or k < 1:
        raise ValueError(f"k (configurations per round) must be a positive integer, got {k!r}")
    n = int(k)
    if max_dft_labels is not None:
        n = min(n, max(int(max_dft_labels) - int(n_labels), 0))
    if pool_left is not None:
        n = min(n, max(int(pool_left), 0))
    return n


def stop_reason(
    *,
    n_rounds: int,
    n_labels: int,
    force_mae: float | None = None,
    energy_mae: float | None = None,
    target_force_mae: float | None = None,
    target_energy_mae: float | None = None,
    max_dft_labels: int | None = None,
    max_rounds: int | None = None,
    pool_left: int | None = None,
    barrier_error: float | None = None,
    target_barrier_error: float | None = None,
) -> str | None:
    """Why the loop stops after ``n_rounds`` rounds with ``n_labels`` DFT labels, or None to go on.

    ``target``: every target given is met (force MAE in eV/Å, energy MAE in eV/atom, each <= its
    target); ``budget``: ``n_labels >= max_dft_labels``; ``max_rounds``: ``n_rounds >= max_rounds``;
    ``pool_exhausted``: no unlabelled candidate left (``pool_left == 0``). Checked in that order, after
    ``barrier``: the barrier loop's check, ``|barrier_error| <= target_barrier_error`` (eV; the model's
    barrier against DFT single points at its own initial state and saddle).
    """
    if target_barrier_error is not None and barrier_error is not None and abs(barrier_error) <= target_barrier_error:
        return "barrier"
    targets = [(force_mae, target_force_mae), (energy_mae, target_energy_mae)]
    given = [(value, goal) for value, goal in targets if goal is not None]
    if given and all(value is not None and value <= goal for value, goal in given):
        return "target"
    if max_dft_labels is not None and n_labels >= max_dft_labels:
        return "budget"
    if max_rounds is not None and n_rounds >= max_rounds:
        return "max_rounds"
    if pool_left is not None and pool_left <= 0:
        return "pool_exhausted"
    return None


# ------------------------------------------------------------------ the barrier loop
#: The saddle check of a barrier-loop round, as its row carries it (eV; ``saddle_frame``: the pool index of the
#: band's highest image).
BARRIER_CHECK_KEYS = ("mlip_barrier", "dft_saddle_barrier", "barrier_check_error", "saddle_frame")


def saddle_image(band_energies: Sequence[float]) -> int:
    """Index of the highest interior image of a band (energies in eV, end states first and last).

    The image whose DFT single point checks the model's barrier in the barrier loop. A band with no
    interior image (two end states) has no saddle: ``ValueError``.
    """
    e = np.asarray(band_energies, dtype=float).ravel()
    if not np.all(np.isfinite(e)):
        bad = int(np.flatnonzero(~np.isfinite(e))[0])
        raise ValueError(f"band_energies has a non-finite energy at image {bad}: {e[bad]}")
    if e.size < 3:
        raise ValueError(f"band_energies has {e.size} images: a saddle needs at least one image between the end states")
    return int(np.argmax(e[1:-1])) + 1


def saddle_check(model_initial: float, model_saddle: float, dft_initial: float, dft_saddle: float) -> dict:
    """The barrier loop's convergence check: the model's barrier along its own band against DFT single
    points at the same two geometries (the initial state and the model's saddle image). Energies in eV.

    Returns ``model_barrier_eV`` (model saddle - model initial), ``dft_barrier_eV`` (DFT at those two
    geometries), ``barrier_error_eV`` (model - DFT) and ``barrier_abs_error_eV``.
    """
    values = {"model_initial": model_initial, "model_saddle": model_saddle, "dft_initial": dft_initial,
              "dft_saddle": dft_saddle}
    for name, value in values.items():
        if not math.isfinite(float(value)):
            raise ValueError(f"{name} is {float(value)} (not finite)")
    model = float(model_saddle) - float(model_initial)
    dft = float(dft_saddle) - float(dft_initial)
    return {"model_barrier_eV": float(model), "dft_barrier_eV": float(dft),
            "barrier_error_eV": float(model - dft), "barrier_abs_error_eV": float(abs(model - dft))}
