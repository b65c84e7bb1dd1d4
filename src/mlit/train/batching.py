"""Effective batch size is the experiment; gradient accumulation is derived from it and the world
size, so running on 1, 2 or 64 devices trains with the same batches."""

from __future__ import annotations


class BatchSizeError(ValueError):
    """The effective batch size cannot be split over this many processes."""


def gradient_accumulation_steps(settings: dict, world_size: int) -> int:
    """``training.effective_batch_size`` / (``launch.training.per_device_train_batch_size`` × world size);
    must divide. ``settings``: a training job's settings (recipe and launch, defaults filled)."""
    per_device = int(settings["per_device_train_batch_size"])
    effective = int(settings["effective_batch_size"])
    per_step = per_device * world_size
    if effective % per_step:
        fits = sorted({d * per_device for d in range(1, effective + 1) if effective % (d * per_device) == 0})
        raise BatchSizeError(
            f"training.effective_batch_size={effective} is not a multiple of launch.training."
            f"per_device_train_batch_size ({per_device}) × processes ({world_size}) = {per_step}; change "
            f"per_device_train_batch_size, the number of processes, or effective_batch_size (per-step batches "
            f"that divide it: {fits[:8]})"
        )
    return effective // per_step
