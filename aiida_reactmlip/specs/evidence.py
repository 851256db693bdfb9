"""The evidence protocol of a loop file: what a claim "the loop needs fewer DFT labels than random" must rest
on, written into the file before anything runs, checked, and expanded into the runs it takes (pure: no AiiDA).

A loop file with an ``evidence`` section::

    evidence:
      target: {metric: force_mae, threshold: 0.10}   # on the test set; force_mae in eV/Å, energy_mae in eV/atom
      runs: 10                  # per split, each with its own selection seed and its own fine-tune seed
      splits: 3                 # group splits of the pool: candidates / validation (stops a loop) / test (scores it)
      layout: crossed           # crossed: `runs` runs on every split (splits x runs); spread: `runs` runs in all,
                                # run r on split r mod `splits` (>= 10 seeds over >= 3 splits at a third the cost)
      validation_fraction: 0.2  # of the pool's frames, dealt in whole groups
      test_fraction: 0.2
      group_by: group           # frame info key naming the parent geometry (its rattles, its MD frames stay on
                                # one side); default auto: info 'group', else 'system'
      baselines: [random, fps]  # run with the same budget, splits and seeds as the file's strategy
      seed: 0                   # draws every split, selection and fine-tune seed

The protocol asks for (:func:`check_evidence` refuses less, naming every shortfall at once):
>= :data:`MIN_RUNS` runs (per split, or in all for ``layout: spread``), >= :data:`MIN_SPLITS` splits, ``k`` of
1 or 2, a committee of >= :data:`MIN_COMMITTEE` for a committee strategy, the baselines ``random`` and ``fps``,
and a test set apart from the validation set. Selection and fine-tune seeds come from two independent streams of one
:class:`numpy.random.SeedSequence`, so that the spread due to the selection and that due to training are
separable; every strategy of a run gets the same seeds (paired comparison, ``metrics.statistics``).
"""

from __future__ import annotations

import numpy as np

from aiida_reactmlip.selection import COMMITTEE_STRATEGIES

#: Keys of the ``evidence`` section.
EVIDENCE_KEYS = {"target", "runs", "splits", "layout", "validation_fraction", "test_fraction", "group_by",
                 "baselines", "seed"}
#: The least the protocol accepts.
MIN_RUNS = 10
MIN_SPLITS = 3
MIN_COMMITTEE = 4
ALLOWED_K = (1, 2)
REQUIRED_BASELINES = ("random", "fps")
#: How runs meet splits: ``crossed`` (every split gets ``runs`` runs) or ``spread`` (``runs`` runs in all, run r
#: on split r mod ``splits``).
LAYOUTS = ("crossed", "spread")
#: Target metrics and their units.
TARGET_METRICS = {"force_mae": "eV/Å", "energy_mae": "eV/atom"}
#: Defaults of the optional keys.
DEFAULTS = {"layout": "crossed", "validation_fraction": 0.2, "test_fraction": 0.2, "group_by": "auto", "seed": 0}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_evidence(spec: dict, path="loop file") -> dict:
    """The ``evidence`` section of loop spec ``spec`` with defaults filled; ValueError naming the file and every
    way it falls short of the protocol (the loop-level ``k``, ``committee_size`` and ``strategy`` included)."""
    evidence = spec.get("evidence")
    if not isinstance(evidence, dict):
        raise ValueError(f"{path}: 'evidence' must be a mapping (target, runs, splits, ...), got {evidence!r}")
    unknown = sorted(set(evidence) - EVIDENCE_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown evidence key(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(EVIDENCE_KEYS))}")
    evidence = {**DEFAULTS, **evidence}
    problems = []
    target = evidence.get("target")
    if not isinstance(target, dict) or target.get("metric") not in TARGET_METRICS \
            or not isinstance(target.get("threshold"), (int, float)) or isinstance(target.get("threshold"), bool) \
            or not target["threshold"] > 0:
        problems.append("target must be {metric: force_mae | energy_mae, threshold: a number > 0 (eV/Å, eV/atom)}"
                        f", got {target!r}")
    for key, least in (("runs", MIN_RUNS), ("splits", MIN_SPLITS)):
        value = evidence.get(key)
        if not _is_int(value) or value < least:
            problems.append(f"{key} must be an integer >= {least}, got {value!r}")
    if evidence["layout"] not in LAYOUTS:
        problems.append(f"layout must be one of {', '.join(LAYOUTS)}, got {evidence['layout']!r}")
    elif evidence["layout"] == "spread" and _is_int(evidence.get("runs")) and _is_int(evidence.get("splits")) \
            and evidence["runs"] < evidence["splits"]:
        problems.append(f"layout spread deals the runs over the splits: runs ({evidence['runs']}) must be >= splits "
                        f"({evidence['splits']}) so that every split is scored")
    fractions = [evidence[key] for key in ("validation_fraction", "test_fraction")]
    if not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f < 1 for f in fractions) \
            or sum(fractions) >= 1:
        problems.append(f"validation_fraction and test_fraction must be in (0, 1) with a sum below 1 (the rest is "
                        f"the candidate pool), got {fractions[0]!r} and {fractions[1]!r}")
    if not isinstance(evidence["group_by"], str) or not evidence["group_by"]:
        problems.append(f"group_by must name a frame info key, got {evidence['group_by']!r}")
    if not _is_int(evidence["seed"]):
        problems.append(f"seed must be an integer, got {evidence['seed']!r}")
    baselines = evidence.get("baselines")
    if not isinstance(baselines, list) or not all(isinstance(b, str) for b in baselines) \
            or not set(REQUIRED_BASELINES) <= set(baselines):
        problems.append(f"baselines must list at least {', '.join(REQUIRED_BASELINES)}, got {baselines!r}")
    strategy = spec.get("strategy", "committee")
    if isinstance(baselines, list) and strategy in baselines:
        problems.append(f"the file's strategy {strategy!r} is also a baseline: compare it with the others")
    k = spec.get("k", 4)
    if k not in ALLOWED_K:
        problems.append(f"k (labels per round) must be 1 or 2 so that labels-to-target is resolved, got {k!r}")
    if strategy in COMMITTEE_STRATEGIES and spec.get("committee_size", 3) < MIN_COMMITTEE:
        problems.append(f"committee_size must be >= {MIN_COMMITTEE} for strategy {strategy!r}, got "
                        f"{spec.get('committee_size', 3)!r}")
    for key in ("seeds", "baseline", "validation"):
        if key in spec and spec.get(key) not in (None, [0]):
            problems.append(f"'{key}' and 'evidence' exclude each other: the protocol draws the seeds, runs its "
                            "baselines and splits the pool into candidates, validation and test itself")
    if "pool" not in spec:
        problems.append("the protocol needs an oracle-mode loop ('pool': a DFT-labelled candidate pool)")
    if problems:
        raise ValueError(f"{path}: the evidence protocol is not met:\n  - " + "\n  - ".join(problems))
    return evidence


def evidence_plan(evidence: dict, strategy: str) -> dict:
    """The splits and runs of a checked ``evidence`` section: ``splits`` (index, seed of the group split),
    ``runs`` (split, run, selection_seed, finetune_seed, strategies: the file's strategy then the baselines) and
    ``layout``. Crossed: ``runs`` runs (index 0 ...) on every split; spread: ``runs`` runs in all, run r on split
    r mod ``splits``.

    Seeds are integers in [0, 2**31) drawn from three independent streams of ``SeedSequence(evidence['seed'])``:
    split seeds, selection seeds and fine-tune seeds; the same file always gives the same plan."""
    split_stream, selection_stream, finetune_stream = np.random.SeedSequence(int(evidence["seed"])).spawn(3)
    n_splits, n_runs = int(evidence["splits"]), int(evidence["runs"])
    layout = evidence.get("layout", "crossed")
    cells = ([(i, j) for i in range(n_splits) for j in range(n_runs)] if layout == "crossed"
             else [(r % n_splits, r) for r in range(n_runs)])
    split_seeds = np.random.default_rng(split_stream).integers(0, 2**31, size=n_splits)
    selection = np.random.default_rng(selection_stream).integers(0, 2**31, size=len(cells))
    finetune = np.random.default_rng(finetune_stream).integers(0, 2**31, size=len(cells))
    strategies = [strategy, *[b for b in evidence["baselines"] if b != strategy]]
    return {
        "layout": layout,
        "splits": [{"index": i, "seed": int(seed)} for i, seed in enumerate(split_seeds)],
        "runs": [{"split": i, "run": j, "selection_seed": int(selection[n]), "finetune_seed": int(finetune[n]),
                  "strategies": strategies}
                 for n, (i, j) in enumerate(cells)],
    }


def planned_runs(plan: dict) -> int:
    """Runs per split (crossed) or in all (spread) of a plan from :func:`evidence_plan`."""
    return max((run["run"] for run in plan["runs"]), default=-1) + 1


def runs_phrase(plan: dict) -> str:
    """How the run count of a plan reads: per split ("each") or in all."""
    return "in all" if plan.get("layout") == "spread" else "each"


def split_parameters(evidence: dict, split_seed: int) -> dict:
    """The ``reactmlip.split_dataset`` parameters of one split: whole ``group_by`` groups to validation and test."""
    return {"validation_fraction": float(evidence["validation_fraction"]),
            "test_fraction": float(evidence["test_fraction"]), "seed": int(split_seed),
            "group_by": evidence["group_by"]}


def describe_plan(plan: dict, evidence: dict) -> str:
    """One paragraph: what the protocol will run (for ``--dry-run`` and the log)."""
    n_runs = len(plan["runs"])
    strategies = plan["runs"][0]["strategies"] if plan["runs"] else []
    target = evidence["target"]
    partial = plan.get("partial")
    prefix = "evidence protocol"
    if partial:
        prefix = (f"PARTIAL evidence protocol (the first {partial['splits'][0]} of {partial['splits'][1]} splits, "
                  f"{partial['runs'][0]} of {partial['runs'][1]} runs {runs_phrase(plan)}: not the protocol's "
                  "verdict)")
    n_splits = len(plan["splits"])
    shape = (f"{n_runs} runs spread over {n_splits} group splits (run r on split r mod {n_splits})"
             if plan.get("layout") == "spread" else f"{n_splits} group splits x {n_runs // max(1, n_splits)} runs")
    return (f"{prefix}: {shape}, "
            f"each run with its own selection and fine-tune seed, strategies {' vs '.join(strategies)}: "
            f"{n_runs * len(strategies)} loops; target {target['metric']} <= {target['threshold']:g} "
            f"{TARGET_METRICS[target['metric']]} on the test set (validation {evidence['validation_fraction']:g}, "
            f"test {evidence['test_fraction']:g} of the groups by '{evidence['group_by']}')")


def partial_plan(plan: dict, splits: int | None = None, runs: int | None = None) -> dict:
    """The first ``splits`` splits and the first ``runs`` runs (of each split when crossed, in all when spread) of
    ``plan`` (:func:`evidence_plan`): a prefix of the protocol, so a later full run reuses these loops from the
    cache. The plan comes back with ``partial``: None when nothing was left out, else
    ``{"splits": [done, planned], "runs": [done, planned]}``. ValueError for a count below 1 or above the plan's."""
    n_splits = len(plan["splits"])
    n_runs = planned_runs(plan)
    problems = [f"{name} must be between 1 and {planned} (the file's protocol), got {value!r}"
                for name, value, planned in (("splits", splits, n_splits), ("runs", runs, n_runs))
                if value is not None and not (_is_int(value) and 1 <= value <= planned)]
    if problems:
        raise ValueError("; ".join(problems))
    keep_splits = n_splits if splits is None else splits
    keep_runs = n_runs if runs is None else runs
    partial = None
    if (keep_splits, keep_runs) != (n_splits, n_runs):
        partial = {"splits": [keep_splits, n_splits], "runs": [keep_runs, n_runs]}
    return {"layout": plan.get("layout", "crossed"), "splits": plan["splits"][:keep_splits],
            "runs": [run for run in plan["runs"] if run["split"] < keep_splits and run["run"] < keep_runs],
            "partial": partial}
