"""Statistics of error-vs-labels curves over seeds: is method A (the loop) better than B (random)?

Pure: numpy and scipy in, numbers and sentences out; no AiiDA. Units are the curves' own (errors in eV/Å for a
force MAE, eV/atom for an energy MAE; label counts are numbers of DFT labels).

Per seed, a curve is summarised by

- :func:`labels_to_target`: the first label count at which the error is at or below the target (first
  crossing: a curve that reaches the target and rises above it again still counts at its first crossing;
  ``sustained=True`` takes the point from which it stays at or below). None: never reached.
- :func:`area_under_curve`: the trapezoid area under the curve divided by its label range, i.e. the mean
  error over the budget in the curve's unit.

Over seeds, :func:`paired_comparison` compares the per-seed values of A and B (same seeds): the paired
Wilcoxon signed-rank test (scipy) and a percentile-bootstrap 95 % confidence interval of the mean paired
difference A - B. A run that never reached the target is *censored*: it is counted at ``censor_at`` (e.g. the
pool size) and the number of such runs is reported. :func:`verdict` writes the result as one sentence, and
:func:`mean_band` gives the mean curve over seeds with a 95 % band (Student t interval by default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from aiida_reactmlip.metrics.loop import area_under_curve as _mean_error_upto
from aiida_reactmlip.metrics.loop import check_curve, labels_to_target

__all__ = [
    "area_under_curve",
    "compare_mean_errors",
    "compare_strategies",
    "labels_to_target",
    "mean_band",
    "min_wilcoxon_p",
    "paired_comparison",
    "verdict",
]

Curve = tuple[Sequence[float], Sequence[float]]


def area_under_curve(labels: Sequence[float], errors: Sequence[float], max_labels: float | None = None, *,
                     hold_last: bool = False) -> float:
    """Trapezoid area under the error-vs-labels curve over [first label count, ``max_labels``], divided by
    that range: the mean error over the budget, in the errors' unit (eV/Å for a force MAE).

    ``max_labels`` defaults to the last point. A curve that ends before ``max_labels`` (a loop stopped at its
    target) raises ``ValueError`` unless ``hold_last=True``, which takes its last error as kept up to
    ``max_labels``. A single point gives its own error.
    """
    x, y = check_curve(labels, errors)
    if max_labels is not None and hold_last and float(max_labels) > x[-1]:
        x, y = np.append(x, float(max_labels)), np.append(y, y[-1])
    return _mean_error_upto(x, y, upto=max_labels)


def min_wilcoxon_p(n_nonzero: int, alternative: str = "two-sided") -> float:
    """The smallest p-value the exact Wilcoxon signed-rank test can give with ``n_nonzero`` non-zero paired
    differences: 2 / 2^n two-sided, 1 / 2^n one-sided (every difference of the same sign). With n <= 5 the
    two-sided test cannot reach p < 0.05, whatever the data."""
    if n_nonzero <= 0:
        return 1.0
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2.0**n_nonzero)


def _censored(values: Sequence[float | None], censor_at: float | None, name: str) -> tuple[np.ndarray, int]:
    """``values`` as floats with None (never reached) replaced by ``censor_at``; the number replaced."""
    missing = sum(v is None for v in values)
    if missing and censor_at is None:
        raise ValueError(f"{name}: {missing} run(s) never reached the target (None); give censor_at (e.g. "
                         "the pool size) to count them there, or leave them out of the comparison")
    out = np.array([float(censor_at) if v is None else float(v) for v in values], dtype=float)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name}: every value must be finite, got {list(values)}")
    return out, missing


def paired_comparison(a: Sequence[float | None], b: Sequence[float | None], *, censor_at: float | None = None,
                      n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0,
                      alternative: str = "two-sided", alpha: float = 0.05,
                      names: tuple[str, str] = ("the loop", "random")) -> dict:
    """Compare per-seed values of method A (``a``, e.g. the loop) and B (``b``, e.g. random), paired by seed.

    ``a[i]`` and ``b[i]`` come from the same seed (labels to target, or mean error over the budget). None: the
    run never reached the target; it is counted at ``censor_at`` (required then) and counted in
    ``n_censored_a`` / ``n_censored_b``.

    Returns a JSON-able dict: ``n``, ``mean_a``, ``std_a``, ``mean_b``, ``std_b`` (sample std, ddof 1; 0 for
    n = 1), ``mean_difference`` (A - B), ``ci_low``/``ci_high`` (percentile bootstrap of the mean paired
    difference: ``n_resamples`` resamples of the seeds with ``numpy.random.default_rng(seed)``),
    ``wilcoxon_p`` (scipy.stats.wilcoxon, zero differences dropped: zero_method "wilcox"; exact without ties,
    an exact permutation test with ties or zeros up to 13 pairs, the normal approximation beyond; 1.0 when
    every difference is 0), ``wilcoxon_method``, ``n_nonzero``, ``min_possible_p`` and
    ``can_reach_significance`` (whether n_nonzero pairs can give p < ``alpha`` at all), ``significant``
    (p < alpha), and the settings.
    """
    if not 0 < confidence < 1 or not 0 < alpha < 1:
        raise ValueError(f"confidence and alpha must lie in (0, 1), got {confidence} and {alpha}")
    if len(a) != len(b):
        raise ValueError(f"{len(a)} values of {names[0]} but {len(b)} of {names[1]}: pair them seed by seed")
    if len(a) == 0:
        raise ValueError("no seeds to compare: give at least one pair of values")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    x, censored_a = _censored(a, censor_at, names[0])
    y, censored_b = _censored(b, censor_at, names[1])
    differences = x - y
    n = differences.size
    n_nonzero = int(np.count_nonzero(differences))
    rng = np.random.default_rng(seed)
    resampled = differences[rng.integers(0, n, size=(int(n_resamples), n))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    ci_low, ci_high = np.percentile(resampled, [tail, 100.0 - tail])
    if n_nonzero == 0:
        p_value, statistic, method = 1.0, None, "none (every paired difference is 0)"
    else:
        result = stats.wilcoxon(x, y, zero_method="wilcox", alternative=alternative, method="auto")
        p_value, statistic = float(result.pvalue), float(result.statistic)
        ties = len(set(np.abs(differences[differences != 0]).tolist())) < n_nonzero
        if n > 50:
            method = "normal approximation"
        elif not ties and n_nonzero == n:
            method = "exact"
        elif n <= 13:
            method = "exact permutation (ties or zero differences)"
        else:
            method = "normal approximation (ties or zero differences)"
    min_p = min_wilcoxon_p(n_nonzero, alternative)
    return {
        "names": list(names),
        "n": int(n),
        "values_a": x.tolist(),
        "values_b": y.tolist(),
        "mean_a": float(x.mean()),
        "std_a": float(x.std(ddof=1)) if n > 1 else 0.0,
        "mean_b": float(y.mean()),
        "std_b": float(y.std(ddof=1)) if n > 1 else 0.0,
        "mean_difference": float(differences.mean()),
        "ci_low": float(ci_low),
        "ci_high": float(ci_high),
        "confidence": float(confidence),
        "n_resamples": int(n_resamples),
        "bootstrap_seed": int(seed),
        "wilcoxon_statistic": statistic,
        "wilcoxon_p": p_value,
        "wilcoxon_method": method,
        "alternative": alternative,
        "n_nonzero": n_nonzero,
        "min_possible_p": min_p,
        "alpha": float(alpha),
        "can_reach_significance": bool(min_p < alpha),
        "significant": bool(p_value < alpha),
        "censor_at": None if censor_at is None else float(censor_at),
        "n_censored_a": censored_a,
        "n_censored_b": censored_b,
    }


def _num(value: float) -> str:
    """A number for a sentence: integers as integers, else three significant digits."""
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def verdict(comparison: dict, quantity: str = "labels", unit: str = "") -> str:
    """One sentence stating the measured comparison of :func:`paired_comparison`.

    E.g. "the loop needs 9 ± 2 labels, random 14 ± 3 (mean ± std over n = 10 seeds), difference -5 [95 % CI
    -7, -3], Wilcoxon p = 0.004". Without significance it starts "no significant difference at p < 0.05: ...";
    with too few pairs it says that p < 0.05 cannot be reached; censored runs are stated with their count.
    ``quantity``: "labels" (labels to target) or a name such as "mean force MAE"; ``unit``: e.g. "eV/Å".
    """
    c = comparison
    name_a, name_b = c.get("names", ["the loop", "random"])
    suffix = f" {unit}" if unit else ""
    if quantity == "labels":
        head = (f"{name_a} needs {_num(c['mean_a'])} ± {_num(c['std_a'])} labels, "
                f"{name_b} {_num(c['mean_b'])} ± {_num(c['std_b'])}")
        suffix = ""
    else:
        head = (f"{quantity}: {name_a} {_num(c['mean_a'])} ± {_num(c['std_a'])}{suffix}, {name_b} "
                f"{_num(c['mean_b'])} ± {_num(c['std_b'])}{suffix}")
    level = round(c["confidence"] * 100)
    body = (f"{head} (mean ± std over n = {c['n']} seeds), difference {_num(c['mean_difference'])}{suffix} "
            f"[{level} % CI {_num(c['ci_low'])}, {_num(c['ci_high'])}], Wilcoxon p = {c['wilcoxon_p']:.3g}")
    alpha = _num(c["alpha"])
    if not c["significant"]:
        body = f"no significant difference at p < {alpha}: {body}"
    notes = []
    if not c["can_reach_significance"]:
        notes.append(f"{c['n_nonzero']} non-zero paired difference(s) cannot reach p < {alpha}: the smallest "
                     f"possible p is {c['min_possible_p']:.3g}")
    censored = [(c["n_censored_a"], name_a), (c["n_censored_b"], name_b)]
    if any(count for count, _ in censored):
        runs = " and ".join(f"{count} of {c['n']} runs of {name}" for count, name in censored if count)
        notes.append(f"{runs} never reached the target and count as {_num(c['censor_at'])} labels")
    return body + (f" ({'; '.join(notes)})" if notes else "")


def mean_band(curves: Sequence[Curve], confidence: float = 0.95, method: str = "t", *,
              n_resamples: int = 10_000, seed: int = 0) -> dict:
    """Mean error curve over seeds and its ``confidence`` band, on the label counts every curve has.

    ``curves``: (labels, errors) per seed. ``method``: "t" (Student t interval of the mean,
    mean ± t(n-1) s/√n) or "bootstrap" (percentile bootstrap of the mean over seeds,
    ``numpy.random.default_rng(seed)``). With one curve the band is undefined (NaN). Label counts missing from
    any curve (a loop that stopped early) are left out. Returns a JSON-able dict: ``labels``, ``mean``,
    ``lower``, ``upper``, ``n``, ``method``, ``confidence``.
    """
    if not curves:
        raise ValueError("no curves to average")
    if method not in ("t", "bootstrap"):
        raise ValueError(f"unknown band method {method!r}; use 't' or 'bootstrap'")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    checked = [check_curve(x, y, f"curve {i}") for i, (x, y) in enumerate(curves)]
    common = set(checked[0][0].tolist()).intersection(*(set(x.tolist()) for x, _ in checked[1:]))
    if not common:
        raise ValueError("the curves share no label count: run them with the same budgets")
    grid = np.array(sorted(common))
    stacked = np.array([[y[np.nonzero(x == n)[0][0]] for n in grid] for x, y in checked])
    n = stacked.shape[0]
    mean = stacked.mean(axis=0)
    if n < 2:
        lower = upper = np.full_like(mean, math.nan)
    elif method == "t":
        half = stats.t.ppf(0.5 + confidence / 2.0, n - 1) * stacked.std(axis=0, ddof=1) / math.sqrt(n)
        lower, upper = mean - half, mean + half
    else:
        rng = np.random.default_rng(seed)
        means = stacked[rng.integers(0, n, size=(int(n_resamples), n))].mean(axis=1)
        tail = (1.0 - confidence) / 2.0 * 100.0
        lower, upper = np.percentile(means, [tail, 100.0 - tail], axis=0)
    return {"labels": grid.tolist(), "mean": mean.tolist(), "lower": np.asarray(lower).tolist(),
            "upper": np.asarray(upper).tolist(), "n": int(n), "method": method,
            "confidence": float(confidence)}


def _common_budget(curves: dict[str, Sequence[Curve]]) -> float:
    """The smallest last label count of all curves; ValueError when the strategies have different run counts."""
    runs = {name: len(group) for name, group in curves.items()}
    if len(set(runs.values())) != 1:
        raise ValueError(f"every strategy needs the same runs to be paired, got {runs}")
    return min(float(labels[-1]) for group in curves.values() for labels, _ in group)


def compare_mean_errors(curves: dict[str, Sequence[Curve]], strategy: str, *, unit: str = "eV", seed: int = 0,
                        what: str = "mean error") -> dict:
    """Paired comparisons of ``strategy`` with every other strategy of ``curves`` on the mean error over the
    common budget (the smallest last label count of all curves; a curve that stopped early keeps its last
    error up to it): for any error curve, e.g. a reactive one (barrier, reaction or stretch energy, in eV).

    Returns ``{other: {"mean_error": comparison, "budget_labels", "mean_error_sentence"}}``."""
    budget = _common_budget(curves)
    means = {name: [area_under_curve(labels, errors, budget, hold_last=True) for labels, errors in group]
             for name, group in curves.items()}
    result = {}
    for other in curves:
        if other != strategy:
            comparison = paired_comparison(means[strategy], means[other], seed=seed, names=(strategy, other))
            result[other] = {"mean_error": comparison, "budget_labels": budget,
                             "mean_error_sentence": verdict(comparison, f"{what} up to {budget:g} labels", unit)}
    return result


def compare_strategies(curves: dict[str, Sequence[Curve]], strategy: str, target: float, *,
                       censor_at: float, unit: str = "eV/Å", seed: int = 0) -> dict:
    """Paired comparisons of ``strategy`` with every other strategy of ``curves`` (name -> per-run curves,
    run ``i`` of every strategy from the same split and seeds): labels to ``target`` (runs that never reach it
    censored at ``censor_at``, e.g. the pool size) and the mean error over the common budget
    (:func:`compare_mean_errors`).

    Returns ``{other: {"labels": comparison, "mean_error": comparison, "labels_sentence", "mean_error_sentence"}}``
    (comparisons of :func:`paired_comparison`, sentences of :func:`verdict`); ValueError when the strategies
    have different numbers of runs."""
    result = compare_mean_errors(curves, strategy, unit=unit, seed=seed)
    for other, entry in result.items():
        labels = paired_comparison([labels_to_target(n, e, target) for n, e in curves[strategy]],
                                   [labels_to_target(n, e, target) for n, e in curves[other]],
                                   censor_at=censor_at, seed=seed, names=(strategy, other))
        entry.update({"labels": labels, "labels_sentence": verdict(labels, "labels")})
    return result
