"""Statistics of error-vs-labels curves over seeds against hand-computed and independently computed numbers
(pure numpy/scipy, milliseconds)."""

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

from aiida_reactmlip.metrics.statistics import (
    area_under_curve,
    labels_to_target,
    mean_band,
    min_wilcoxon_p,
    paired_comparison,
    verdict,
)

N = [0, 4, 8, 12, 16]
DIP = [0.13, 0.09, 0.06, 0.08, 0.065]  # eV/Å: reaches 0.07 at 8 labels, leaves it at 12, back at 16


def exact_signed_rank_p(differences) -> float:
    """Two-sided p of the Wilcoxon signed-rank test by enumerating every sign pattern of the non-zero
    differences' mid-ranks: an independent reference for scipy (exact also with ties)."""
    d = np.asarray([x for x in differences if x != 0], dtype=float)
    ranks = stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    mean = ranks.sum() / 2
    extreme = abs(observed - mean)
    count = sum(abs(sum(r for r, s in zip(ranks, signs) if s) - mean) >= extreme - 1e-12
                for signs in itertools.product([0, 1], repeat=len(d)))
    return count / 2 ** len(d)


# ----------------------------------------------------------------------------------- per-seed summaries


def test_labels_to_target_takes_the_first_crossing():
    assert labels_to_target(N, DIP, 0.07) == 8  # reaches 0.06 at 8, leaves (0.08 at 12): the first crossing counts
    assert labels_to_target(N, DIP, 0.07, sustained=True) == 16  # from 16 on it stays below
    assert labels_to_target(N, DIP, 0.09) == 4  # equality counts as reached
    assert labels_to_target(N, DIP, 0.2) == 0  # the zero-shot model already meets it
    assert labels_to_target(N, DIP, 0.05) is None


def test_area_under_a_linear_curve_is_its_mean():
    labels = [0, 2, 4, 6, 8, 10]
    errors = [0.3 - 0.02 * n for n in labels]  # 0.30 at 0 labels down to 0.10 at 10
    assert area_under_curve(labels, errors) == pytest.approx(0.2, abs=1e-12)
    assert area_under_curve(labels, errors, max_labels=5) == pytest.approx(0.25, abs=1e-12)  # 0.30 -> 0.20
    # a loop stopped at its target after 4 labels, held at its last error up to 8: (0.8 + 0.4) / 8
    assert area_under_curve([0, 4], [0.3, 0.1], max_labels=8, hold_last=True) == pytest.approx(0.15, abs=1e-12)
    with pytest.raises(ValueError, match="outside the curve's label range"):
        area_under_curve([0, 4], [0.3, 0.1], max_labels=8)


# ----------------------------------------------------------------------------------- paired comparison


def test_wilcoxon_matches_the_exact_textbook_value():
    # differences 1..10 with the 8 negative: W- = 8; P(W <= 8) = 25 / 1024 subsets of {1..10} -> p = 50 / 1024
    differences = [1, 2, 3, 4, 5, 6, 7, -8, 9, 10]
    result = paired_comparison(differences, [0] * 10)
    assert result["wilcoxon_p"] == pytest.approx(50 / 1024, abs=1e-12)
    assert result["wilcoxon_p"] == pytest.approx(exact_signed_rank_p(differences), abs=1e-12)
    assert result["wilcoxon_statistic"] == 8.0 and result["wilcoxon_method"] == "exact"
    assert result["significant"] and result["can_reach_significance"]


def test_wilcoxon_with_ties_and_zeros_is_an_exact_permutation_test():
    a = np.array([10, 12, 9, 14, 11, 13, 12, 10], dtype=float)
    b = a + np.array([2, 2, 0, -1, 3, 2, 1, 3])  # ties among |d| (2, 2, 2, 3, 3) and one zero
    result = paired_comparison(a, b)
    assert result["n_nonzero"] == 7
    assert result["wilcoxon_method"] == "exact permutation (ties or zero differences)"
    assert result["wilcoxon_p"] == pytest.approx(exact_signed_rank_p(a - b), abs=1e-12)
    assert result["wilcoxon_p"] == pytest.approx(6 / 128, abs=1e-12)  # 6 of the 128 sign patterns as extreme


def test_too_few_seeds_cannot_reach_significance_and_the_verdict_says_so():
    five = paired_comparison([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])  # every difference -5: the most extreme data
    assert five["wilcoxon_p"] == pytest.approx(2 / 32, abs=1e-12) == min_wilcoxon_p(5)
    assert not five["can_reach_significance"] and not five["significant"]
    sentence = verdict(five)
    assert sentence.startswith("no significant difference at p < 0.05: the loop needs 3 ± 1.58 labels, random 8 ± "
                               "1.58 (mean ± std over n = 5 seeds), difference -5 [95 % CI -5, -5], Wilcoxon "
                               "p = 0.0625")
    assert "5 non-zero paired difference(s) cannot reach p < 0.05: the smallest possible p is 0.0625" in sentence
    six = paired_comparison([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
    assert six["wilcoxon_p"] == pytest.approx(1 / 32, abs=1e-12) and six["significant"]
    equal = paired_comparison([3, 4], [3, 4])
    assert equal["wilcoxon_p"] == 1.0 and equal["n_nonzero"] == 0 and equal["ci_low"] == equal["ci_high"] == 0


def test_bootstrap_interval_of_the_mean_difference():
    # n = 2, differences 0 and 2: resampled means are 0, 1, 2 with probabilities 1/4, 1/2, 1/4
    result = paired_comparison([10, 12], [10, 10], n_resamples=10_000, seed=1)
    assert (result["ci_low"], result["ci_high"]) == (0.0, 2.0)
    # a constructed case: the loop needs 5 labels fewer than random, give or take one
    rng = np.random.default_rng(7)
    random_labels = rng.integers(12, 20, size=10).astype(float)
    loop_labels = random_labels - 5 + rng.choice([-1.0, 0.0, 1.0], size=10)
    result = paired_comparison(loop_labels, random_labels)
    assert result["ci_low"] <= -5 <= result["ci_high"] and result["ci_high"] < 0  # contains the truth, not 0
    assert result["mean_difference"] == pytest.approx(float(np.mean(loop_labels - random_labels)))
    assert result["std_a"] == pytest.approx(float(np.std(loop_labels, ddof=1)))
    assert paired_comparison(loop_labels, random_labels) == result  # seeded: the same interval again
    # no difference on average: the interval holds 0
    noise = paired_comparison([10, 11, 9, 12, 10, 11], [11, 10, 10, 11, 11, 10])
    assert noise["ci_low"] < 0 < noise["ci_high"] and not noise["significant"]
    assert json.loads(json.dumps(result)) == result


def test_runs_that_never_reach_the_target_are_censored_and_counted():
    loop = [8, 12, None, 8, 4, 12]
    rand = [16, None, None, 12, 8, 20]
    with pytest.raises(ValueError, match="never reached the target .* give censor_at"):
        paired_comparison(loop, rand)
    result = paired_comparison(loop, rand, censor_at=45)
    assert result["values_a"] == [8, 12, 45, 8, 4, 12] and result["values_b"] == [16, 45, 45, 12, 8, 20]
    assert (result["n_censored_a"], result["n_censored_b"]) == (1, 2)
    assert result["n_nonzero"] == 5 and not result["can_reach_significance"]  # the pair (45, 45) is a zero
    assert verdict(result).endswith("(5 non-zero paired difference(s) cannot reach p < 0.05: the smallest possible "
                                    "p is 0.0625; 1 of 6 runs of the loop and 2 of 6 runs of random never reached "
                                    "the target and count as 45 labels)")


def test_verdict_of_a_significant_difference_and_of_a_mean_error():
    loop = [8, 9, 10, 8, 9, 10, 8, 9, 10, 9]
    rand = [13, 13, 16, 13, 14, 16, 12, 14, 15, 14]  # 4 to 6 labels more, every seed
    result = paired_comparison(loop, rand)
    assert result["wilcoxon_p"] == pytest.approx(2 / 1024, abs=1e-12)  # every sign negative: the extreme pattern
    assert verdict(result) == (f"the loop needs 9 ± 0.816 labels, random 14 ± 1.33 (mean ± std over n = 10 seeds), "
                               f"difference -5 [95 % CI {result['ci_low']:.3g}, {result['ci_high']:.3g}], Wilcoxon "
                               "p = 0.00195")
    auc = paired_comparison([0.078, 0.070], [0.085, 0.080], names=("committee", "random"))
    assert verdict(auc, "mean force MAE", "eV/Å").startswith(
        "no significant difference at p < 0.05: mean force MAE: committee 0.074 ± 0.00566 eV/Å, random 0.0825 ± "
        "0.00354 eV/Å (mean ± std over n = 2 seeds), difference -0.0085 eV/Å")


# ------------------------------------------------------------------------------------------- mean band


def test_mean_band_is_the_student_t_interval():
    curves = [([0, 4, 8], [0.13, 0.10, 0.1]), ([0, 4, 8], [0.13, 0.20, 0.2]), ([0, 4, 8, 12], [0.13, 0.30, 0.3, 0.1])]
    band = mean_band(curves)
    assert band["labels"] == [0, 4, 8] and band["n"] == 3  # 12 labels: not in every curve
    # at 4 labels: mean 0.2, s = 0.1, t(0.975, 2) = 4.3027 (tables): half width 4.3027 * 0.1 / sqrt(3) = 0.24841
    assert band["mean"][1] == pytest.approx(0.2)
    assert band["upper"][1] - band["mean"][1] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), abs=1e-6)
    assert band["lower"][0] == pytest.approx(0.13) and band["upper"][0] == pytest.approx(0.13)  # no spread at 0
    boot = mean_band(curves, method="bootstrap")
    assert 0.1 - 1e-12 <= boot["lower"][1] < 0.2 < boot["upper"][1] <= 0.3 + 1e-12  # within the seeds' range, around the mean
    single = mean_band(curves[:1])
    assert single["mean"] == [0.13, 0.10, 0.1] and all(math.isnan(x) for x in single["lower"])
    with pytest.raises(ValueError, match="unknown band method 'sd'"):
        mean_band(curves, method="sd")
