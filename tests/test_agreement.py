import math

import pytest

from mlit.annotation.agreement import (exact_agreement, kendall_tau_b, krippendorff_alpha, pairwise_agreement, pearson,
                            quadratic_weighted_kappa, spearman, within_one_agreement)


def test_correlations_by_hand():
    assert pearson([1, 2, 3], [1, 2, 3]) == pytest.approx(1) and pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    # ranks with a tie: a -> 1, 2.5, 2.5, 4; b -> 1, 3, 2, 4; r = 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)  # 5 concordant, 1 discordant
    # tau-b with a tie in a: C=5, D=0, one pair tied only in a -> 5 / sqrt((5 + 1) * 5)
    assert kendall_tau_b([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))


def test_agreement_rates():
    assert exact_agreement([5, 6, 7, 8], [5, 7, 7, 1]) == 0.5
    assert within_one_agreement([5, 6, 7, 8], [5, 7, 7, 1]) == 0.75
    assert pairwise_agreement(["A", "B", "tie", "A"], ["A", "B", "A", "tie"]) == 0.5
    assert pairwise_agreement(["A", "B", "tie", "A"], ["A", "B", "A", "tie"], with_ties=False) == 1.0


def test_quadratic_weighted_kappa_known_examples():
    # the textbook example (Cohen's kappa, 50 items: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no) = 0.4;
    # with two categories the quadratic weights equal the unweighted ones
    a = [1] * 25 + [0] * 25
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert quadratic_weighted_kappa(a, b, categories=[0, 1]) == pytest.approx(0.4)
    assert quadratic_weighted_kappa([1, 5, 10], [1, 5, 10]) == pytest.approx(1.0)
    assert quadratic_weighted_kappa([1, 1, 2, 2], [1, 2, 1, 2], categories=[1, 2]) == pytest.approx(0.0)
    # disagreeing by 1 on a 10-point scale costs less than disagreeing by 9
    assert quadratic_weighted_kappa([1, 10, 1, 10], [2, 9, 1, 10]) > quadratic_weighted_kappa([1, 10, 1, 10],
                                                                                               [10, 1, 1, 10])


def test_krippendorff_alpha_by_hand():
    nan = float("nan")
    # units (1,1), (2,2), (3,4): D_o = 2/6; D_e = 82/30 over the pooled values -> 1 - 30/246
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 4]]) == pytest.approx(1 - 30 / 246)
    assert krippendorff_alpha([[1, 2, 3, nan], [1, 2, 3, 5]]) == pytest.approx(1.0)  # lone rating ignored
    assert krippendorff_alpha([[1, 2, 1], [1, 2, 2]], level="nominal") == pytest.approx(1 - (2 / 6) / (18 / 30))
