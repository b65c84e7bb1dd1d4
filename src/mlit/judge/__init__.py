"""Judging: requests, the OpenAI-compatible client and Batch API, scores per cell."""
