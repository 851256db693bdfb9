"""Evidence with statistics: active-learning loops over several seeds summarised per strategy (mean error
curve with a 95 % band, labels to target and mean error over the budget per seed, paired tests against
random), the recorded values that the regression tests compare with (``docs/results/regression-values.json``)
and the blocks of docs/metrics.md made from them.

The summaries and the plot are pure (numbers in, PNG / Markdown / JSON out,
:mod:`aiida_reactmlip.metrics.statistics` underneath); :func:`write_loop_evidence` reads finished
``reactmlip.active_learning`` nodes.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping, Sequence

from aiida_reactmlip.metrics.learning_curves import REACTIVE_METRICS
from aiida_reactmlip.metrics.statistics import (
    area_under_curve,
    labels_to_target,
    mean_band,
    paired_comparison,
    verdict,
)
from aiida_reactmlip.report.docs_blocks import REPO_ROOT, markdown_table, provenance
from aiida_reactmlip.report.plots import _finish, _pyplot

#: The values the tight regression tests compare with, each recorded by the command stored beside it.
REGRESSION_VALUES = REPO_ROOT / "docs" / "results" / "regression-values.json"

#: Environment variable: when set to 1, the regression tests record their measured value instead of comparing.
RECORD_ENV = "REACTMLIP_RECORD_REGRESSION"


# ---------------------------------------------------------------------------------- regression values


def recorded_value(name: str, path: pathlib.Path = REGRESSION_VALUES) -> dict:
    """The recorded entry ``name`` (``value``, ``unit``, ``tolerance``, ``provenance``, ...) of the JSON."""
    entries = json.loads(pathlib.Path(path).read_text())["values"]
    if name not in entries:
        raise KeyError(f"{path} records no value {name!r} (has {sorted(entries)}); record it with "
                       f"{RECORD_ENV}=1 and the test's command")
    return entries[name]


def record_value(name: str, value: float, *, unit: str, tolerance: float, tolerance_kind: str, command: str,
                 path: pathlib.Path = REGRESSION_VALUES, **details) -> dict:
    """Write ``value`` as entry ``name`` of the regression JSON (other entries kept) with its provenance
    (:func:`~aiida_reactmlip.report.docs_blocks.provenance` of ``command``); ``tolerance_kind``: "absolute"
    (in ``unit``) or "relative" (a fraction). Returns the entry."""
    if tolerance_kind not in ("absolute", "relative"):
        raise ValueError(f"tolerance_kind must be 'absolute' or 'relative', got {tolerance_kind!r}")
    path = pathlib.Path(path)
    data = json.loads(path.read_text()) if path.exists() else {
        "description": "Values measured by the regression tests themselves; each test compares its run with "
                       "its entry within the tolerance. Rerun an entry's command to record it again.",
        "values": {}}
    entry = {"value": float(value), "unit": unit, "tolerance": float(tolerance),
             "tolerance_kind": tolerance_kind, **details, "provenance": provenance(command)}
    data["values"][name] = entry
    path.write_text(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
    return entry


def regression_entry(name: str, measured: float, *, path: pathlib.Path = REGRESSION_VALUES,
                     **record_options) -> dict:
    """The entry a regression test compares ``measured`` with: read from the JSON, or, when the environment
    variable :data:`RECORD_ENV` is 1, ``measured`` recorded first (``record_options``: those of
    :func:`record_value`)."""
    import os

    if os.environ.get(RECORD_ENV) == "1":
        return record_value(name, measured, path=path, **record_options)
    return recorded_value(name, path)


def allowed_range(entry: Mapping) -> tuple[float, float]:
    """The (low, high) interval a recorded ``entry`` accepts: value ± tolerance (absolute) or ± tolerance ×
    |value| (relative)."""
    value, tolerance = float(entry["value"]), float(entry["tolerance"])
    width = tolerance if entry["tolerance_kind"] == "absolute" else tolerance * abs(value)
    return value - width, value + width


# ---------------------------------------------------------------------------------- loops over seeds


def loop_evidence(curves: Mapping[str, Sequence[dict]], target: float, *, baseline: str = "random",
                  censor_at: float | None = None, max_labels: float | None = None, seed: int = 0) -> dict:
    """Labels to target and mean error over the budget per strategy and seed, and paired comparisons of every
    strategy with ``baseline`` (seeds matched by value).

    ``curves``: strategy -> list of {"seed", "n_labels", "force_mae"} (one per seed; force MAE in eV/Å).
    ``target`` (eV/Å): first crossing counts (:func:`~aiida_reactmlip.metrics.statistics.labels_to_target`).
    Runs that never reach it are counted at ``censor_at`` (default: the largest label count of any curve, the
    budget) and counted. ``max_labels``: the range of the mean error (default: the budget); a curve that
    stopped before it keeps its last error. Returns a JSON-able dict.
    """
    if not curves:
        raise ValueError("no loop curves: give at least one strategy with one seed")
    budget = max(max(c["n_labels"]) for group in curves.values() for c in group)
    censor_at = float(budget if censor_at is None else censor_at)
    upto = float(budget if max_labels is None else max_labels)
    per_strategy = {}
    for strategy, group in curves.items():
        per_strategy[strategy] = {
            "seeds": [c["seed"] for c in group],
            "labels_to_target": [labels_to_target(c["n_labels"], c["force_mae"], target) for c in group],
            "mean_force_mae": [area_under_curve(c["n_labels"], c["force_mae"], upto, hold_last=True)
                               for c in group],
            "band": mean_band([(c["n_labels"], c["force_mae"]) for c in group]),
        }
    comparisons = {}
    if baseline in per_strategy:
        base = per_strategy[baseline]
        for strategy, summary in per_strategy.items():
            if strategy == baseline:
                continue
            seeds = [s for s in summary["seeds"] if s in base["seeds"]]
            if not seeds:
                continue
            names = (strategy, baseline)
            labels = _paired(summary, base, "labels_to_target", seeds, censor_at=censor_at, seed=seed,
                             names=names)
            auc = _paired(summary, base, "mean_force_mae", seeds, censor_at=None, seed=seed, names=names)
            comparisons[strategy] = {
                "seeds": seeds,
                "labels_to_target": labels,
                "labels_verdict": verdict(labels, "labels"),
                "mean_force_mae": auc,
                "mean_force_mae_verdict": verdict(auc, f"mean force MAE over {int(upto)} labels", "eV/Å"),
            }
    return {"target_force_mae": float(target), "budget": int(budget), "censor_at": censor_at,
            "auc_upto": upto, "baseline": baseline, "strategies": per_strategy, "comparisons": comparisons}


def _paired(a: dict, b: dict, key: str, seeds: list, **options) -> dict:
    """:func:`paired_comparison` of the per-seed values ``key`` of summaries ``a`` and ``b`` on ``seeds``."""
    return paired_comparison([a[key][a["seeds"].index(s)] for s in seeds],
                             [b[key][b["seeds"].index(s)] for s in seeds], **options)


def plot_mean_band(bands: Mapping[str, dict], path: str | pathlib.Path, *, target: float | None = None,
                   ylabel: str = "force MAE on the validation set (eV/Å)", title: str = "") -> pathlib.Path:
    """Mean error against DFT labels per strategy with its band (from
    :func:`~aiida_reactmlip.metrics.statistics.mean_band`: 95 % Student t interval of the mean over seeds)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.2), dpi=120)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, band) in enumerate(bands.items()):
        color = colors[k % len(colors)]
        level = round(band["confidence"] * 100)
        ax.plot(band["labels"], band["mean"], marker="os^Dv"[k % 5], color=color, lw=2,
                label=f"{name}: mean of {band['n']} seeds, {level} % band ({band['method']})")
        ax.fill_between(band["labels"], band["lower"], band["upper"], color=color, alpha=0.2, lw=0)
    if target is not None:
        ax.axhline(target, color="0.3", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("DFT labels used")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    return _finish(fig, ax, path, title, fontsize=8)


def _cell(value, digits: int = 4) -> str:
    if value is None:
        return "not reached"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def evidence_markdown(evidence: dict) -> str:
    """Markdown: one row per strategy and seed (labels to target, mean force MAE), then one verdict per
    comparison. Every number comes from ``evidence`` (:func:`loop_evidence`)."""
    rows = []
    for strategy, summary in evidence["strategies"].items():
        columns = zip(summary["seeds"], summary["labels_to_target"], summary["mean_force_mae"])
        rows += [[strategy, seed, _cell(labels), _cell(auc)] for seed, labels, auc in columns]
    header = ["strategy", "seed", f"labels to {evidence['target_force_mae']:g} eV/Å",
              f"mean force MAE over {int(evidence['auc_upto'])} labels (eV/Å)"]
    lines = [markdown_table(header, rows), ""]
    for strategy, comparison in evidence["comparisons"].items():
        lines.append(f"- {strategy} against {evidence['baseline']}, labels to target: "
                     f"{comparison['labels_verdict']}.")
        lines.append(f"- {strategy} against {evidence['baseline']}: {comparison['mean_force_mae_verdict']}.")
    lines.append("")
    lines.append(f"Runs that never reach the target count as {_cell(evidence['censor_at'], 0)} labels. ± is "
                 "the standard deviation over seeds; the confidence interval is a percentile bootstrap "
                 "(10,000 resamples) of the mean paired difference; the test is the paired Wilcoxon "
                 "signed-rank test.")
    return "\n".join(lines)


def loop_curve(node) -> dict:
    """The error curve of a finished ActiveLearningWorkChain (from its ``summary``)."""
    summary = node.outputs.summary.get_dict()
    return {
        "pk": node.pk,
        "strategy": summary["strategy"],
        "seed": summary["seed"],
        "k": summary["k"],
        "n_labels": summary["n_labels"],
        "force_mae": summary["force_mae"],
        "energy_mae_per_atom": summary["energy_mae_per_atom"],
        "stop_reason": summary["stop_reason"],
        "target_force_mae": summary.get("target_force_mae"),
        "target_energy_mae": summary.get("target_energy_mae"),
        "rounds": summary["rounds"],
        "mode": summary.get("mode"),
        **{metric: summary[metric] for metric in REACTIVE_METRICS if metric in summary},
    }


def write_loop_evidence(nodes: Sequence, output: str | pathlib.Path, target: float | None = None, *,
                        baseline: str = "random") -> dict[str, pathlib.Path]:
    """The evidence of finished loops ``nodes`` (every strategy and seed, baselines included) in ``output``:
    ``evidence_band.png`` (mean force MAE per strategy with its 95 % band), ``evidence.md`` (the table and the
    verdicts) and ``evidence.json`` (every number, the node UUIDs). ``target`` (eV/Å) defaults to the loops'
    own ``target_force_mae``. Runs that never reach it count at the oracle pool's size when every loop has
    one, else at the budget. Returns the files by name."""
    nodes = list(nodes)
    curves: dict[str, list[dict]] = {}
    for node in nodes:
        curve = loop_curve(node)
        curve["uuid"] = node.uuid
        curves.setdefault(curve["strategy"], []).append(curve)
    if target is None:
        target = next((c["target_force_mae"] for group in curves.values() for c in group
                       if c.get("target_force_mae") is not None), None)
    if target is None:
        raise ValueError("no force MAE target: give target (eV/Å) or run the loops with target_force_mae")
    pools = {node.inputs.label_pool.n_frames for node in nodes if "label_pool" in node.inputs}
    censor_at = pools.pop() if len(pools) == 1 and all("label_pool" in n.inputs for n in nodes) else None
    evidence = loop_evidence(curves, target, baseline=baseline, censor_at=censor_at)
    evidence["censored_at"] = "pool size" if censor_at is not None else "budget"
    evidence["loops"] = {s: [{"seed": c["seed"], "pk": c["pk"], "uuid": c["uuid"]} for c in group]
                         for s, group in curves.items()}
    output = pathlib.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    files = {"evidence_band.png": plot_mean_band(
        {s: summary["band"] for s, summary in evidence["strategies"].items()}, output / "evidence_band.png",
        target=target, title="mean force error against DFT labels, 95 % band")}
    files["evidence.md"] = output / "evidence.md"
    files["evidence.md"].write_text(evidence_markdown(evidence) + "\n")
    files["evidence.json"] = output / "evidence.json"
    files["evidence.json"].write_text(json.dumps(evidence, indent=2, ensure_ascii=False) + "\n")
    return files


# ---------------------------------------------------------------------------------- docs/metrics.md blocks

#: The example of docs/metrics.md, section "Statistics": the data of tests/metrics/test_statistics.py.
STATISTICS_EXAMPLE = '''from aiida_reactmlip.metrics.statistics import (
    area_under_curve, labels_to_target, mean_band, paired_comparison, verdict)

labels = [0, 4, 8, 12, 16]
errors = [0.13, 0.09, 0.06, 0.08, 0.065]  # force MAE (eV/Å) of one seed against DFT labels used
print(labels_to_target(labels, errors, 0.07))                  # first crossing
print(labels_to_target(labels, errors, 0.07, sustained=True))  # from here on it stays at or below
print(round(area_under_curve(labels, errors), 5))              # mean force MAE over 0-16 labels (eV/Å)

loop = [8, 9, 10, 8, 9, 10, 8, 9, 10, 9]        # labels to target per seed, the loop
rand = [13, 13, 16, 13, 14, 16, 12, 14, 15, 14]  # random selection, the same seeds
print(verdict(paired_comparison(loop, rand)))
print(verdict(paired_comparison([8, 12, None, 8, 4, 12], [16, None, None, 12, 8, 20], censor_at=45)))

seeds = [errors, [0.13, 0.10, 0.08, 0.07, 0.06], [0.13, 0.11, 0.07, 0.06, 0.06]]  # three seeds
band = mean_band([(labels, e) for e in seeds])  # 95 % Student t band of the mean curve
print(int(band["labels"][2]), *(round(band[key][2], 4) for key in ("mean", "lower", "upper")))'''


def statistics_example_markdown() -> str:
    """The example code of :data:`STATISTICS_EXAMPLE` and what it prints, run now (nothing typed by hand)."""
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(STATISTICS_EXAMPLE, "statistics-example", "exec"), {})  # noqa: S102 - our own example
    return f"```python\n{STATISTICS_EXAMPLE}\n```\n\nprints\n\n```\n{printed.getvalue().rstrip()}\n```"


def regression_values_markdown(path: pathlib.Path = REGRESSION_VALUES) -> str:
    """The recorded values of the regression tests as a Markdown table (from the JSON only)."""
    entries = json.loads(pathlib.Path(path).read_text())["values"]
    rows = []
    for name, entry in entries.items():
        tolerance = (f"± {entry['tolerance']:g} {entry['unit']}" if entry["tolerance_kind"] == "absolute"
                     else f"± {entry['tolerance'] * 100:g} %")
        origin = entry["provenance"]
        rows.append([f"`{name}`", f"{entry['value']:.4f} {entry['unit']}", tolerance, f"`{entry['test']}`",
                     f"{origin['generated'][:10]}, load {origin['load_average'][0]:g} on "
                     f"{origin['machine']['logical_cores']} cores"])
    commands = sorted({entry["provenance"]["command"] for entry in entries.values()})
    return "\n".join([markdown_table(["value", "recorded", "test accepts", "test", "recorded on"], rows), "",
                      "Recorded by:", "", *[f"    {command}" for command in commands]])


#: The blocks of docs/metrics.md this module writes, by name.
METRICS_PAGE = REPO_ROOT / "docs" / "metrics.md"
METRICS_BLOCKS = {"statistics-example": statistics_example_markdown,
                  "regression-values": regression_values_markdown}


def write_metrics_blocks(page: pathlib.Path = METRICS_PAGE) -> None:
    """Regenerate the blocks of docs/metrics.md from the code and the JSON::

        .venv/bin/python -c "from aiida_reactmlip.report.evidence import write_metrics_blocks as w; w()"
    """
    from aiida_reactmlip.report.docs_blocks import write_block

    for name, render in METRICS_BLOCKS.items():
        write_block(page, name, render())
