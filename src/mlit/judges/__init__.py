"""Several judges over the same answers: their agreement, a reference file re-judged, whether the study's
comparisons hold under each judge, and what judging a sample with one judge and everything with another costs."""
