"""Effective batch size is the experiment; gradient accumulation is derived from it and the world
size, so running on 1, 2 or 64 devices trains with the same batches."""

from __future__ import annotations


class BatchSizeError(ValueError):
    """The effective batch size cannot be split over this many processes."""


def gradient_accumulation_steps(settings: dict, world_size: int) -> int:
    """``training.effective_batch_size`` / (``per_device_batch_size`` × world size); must divide.

    Without ``effective_batch_size`` the configured ``gradient_accumulation_steps`` (default 1) is
    used as is, and the effective batch then grows with the world size."""
    per_device = int(settings.get("per_device_batch_size", 8))
    effective = settings.get("effective_batch_size")
    if effective is None:
        return int(settings.get("gradient_accumulation_steps", 1))
    per_step = per_device * world_size
    if effective % per_step:
        fits = sorted({d * per_device for d in range(1, effective + 1) if effective % (d * per_device) == 0})
        raise BatchSizeError(
            f"training.effective_batch_size={effective} is not a multiple of per_device_batch_size "
            f"({per_device}) × processes ({world_size}) = {per_step}; change per_device_batch_size, the number "
            f"of processes, or effective_batch_size (per-step batches that divide it: {fits[:8]})"
        )
    return effective // per_step
