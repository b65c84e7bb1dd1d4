"""Agreement between raters (human vs GPT-4 judge, human vs human), in plain numpy.

Ratings: Pearson, Spearman and Kendall (tau-b) correlation, exact and within-one agreement,
quadratic-weighted Cohen's kappa. Pairwise verdicts: MT-Bench's agreement rate with and without
ties. Several annotators on the same items: Krippendorff's alpha (interval or ordinal-free nominal).
"""

from __future__ import annotations

import numpy as np


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), 1-based."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator else float("nan")


def spearman(a, b) -> float:
    return pearson(_ranks(np.asarray(a, float)), _ranks(np.asarray(b, float)))


def kendall_tau_b(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        da, db = np.sign(a[i + 1 :] - a[i]), np.sign(b[i + 1 :] - b[i])
        product = da * db
        concordant += int((product > 0).sum())
        discordant += int((product < 0).sum())
        ties_a += int(((da == 0) & (db != 0)).sum())
        ties_b += int(((db == 0) & (da != 0)).sum())
    denominator = np.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return float((concordant - discordant) / denominator) if denominator else float("nan")


def exact_agreement(a, b) -> float:
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def within_one_agreement(a, b) -> float:
    return float(np.mean(np.abs(np.asarray(a, float) - np.asarray(b, float)) <= 1))


def quadratic_weighted_kappa(a, b, categories=range(1, 11)) -> float:
    """Cohen's kappa with quadratic weights over the rating scale (1..10 by default)."""
    categories = list(categories)
    index = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    observed = np.zeros((k, k))
    for x, y in zip(a, b):
        observed[index[x], index[y]] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    i, j = np.meshgrid(range(k), range(k), indexing="ij")
    weights = (i - j) ** 2 / (k - 1) ** 2
    denominator = (weights * expected).sum()
    return float(1 - (weights * observed).sum() / denominator) if denominator else float("nan")


def pairwise_agreement(a, b, with_ties: bool = True) -> float:
    """MT-Bench's agreement on pairwise verdicts ('A', 'B', 'tie'); without ties, pairs where either
    rater said tie are left out."""
    pairs = list(zip(a, b))
    if not with_ties:
        pairs = [(x, y) for x, y in pairs if x != "tie" and y != "tie"]
    return float(np.mean([x == y for x, y in pairs])) if pairs else float("nan")


def krippendorff_alpha(ratings, level: str = "interval") -> float:
    """Krippendorff's alpha; ``ratings`` is raters x items with ``nan`` for missing ratings.
    ``level`` is 'interval' (squared difference) or 'nominal'."""
    data = np.asarray(ratings, float)
    units = [column[~np.isnan(column)] for column in data.T]
    units = [u for u in units if len(u) >= 2]
    if not units:
        return float("nan")

    def delta(x, y):
        return (x - y) ** 2 if level == "interval" else float(x != y)

    n = sum(len(u) for u in units)
    observed = sum(sum(delta(x, y) for i, x in enumerate(u) for j, y in enumerate(u) if i != j) / (len(u) - 1)
                   for u in units) / n
    pooled = np.concatenate(units)
    expected = sum(delta(x, y) for i, x in enumerate(pooled) for j, y in enumerate(pooled) if i != j) / (n * (n - 1))
    return float(1 - observed / expected) if expected else float("nan")


def rating_agreement(human, judge) -> dict[str, float]:
    """All rating agreement figures for one set of paired ratings."""
    return {"n": len(human), "pearson": pearson(human, judge), "spearman": spearman(human, judge),
            "kendall_tau_b": kendall_tau_b(human, judge), "exact": exact_agreement(human, judge),
            "within_one": within_one_agreement(human, judge),
            "quadratic_weighted_kappa": quadratic_weighted_kappa(human, judge)}
