"""The human annotation study: rating sheets out and in, agreement with the judge."""
