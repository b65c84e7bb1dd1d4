"""The arithmetic of the plan: optimizer steps, training FLOPs, wall time, checkpoint disk, judge requests.

Pure functions of numbers (no files), each with its assumption in its docstring; ``mlit.plan.grid``
feeds them from the grid, the data and the model configs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

# Bytes per parameter of one checkpoint (weights + optimizer): bf16 mixed precision keeps bf16 weights
# (2) plus fp32 master weights and Adam's two moments (4 + 4 + 4 = 12), as ZeRO's checkpoints do; fp32
# training (the CPU) keeps fp32 weights (4) and Adam's two moments (8).
CHECKPOINT_BYTES_BF16 = 2 + 12
CHECKPOINT_BYTES_FP32 = 4 + 8
TYPICAL_JUDGMENT_TOKENS = 200  # a typical judgment's completion tokens, as mlit.judge.step.write_dry_run


def optimizer_steps(examples: int, effective_batch: int, epochs: float, max_steps: int = -1) -> int:
    """HF Trainer's count: ceil(examples / effective batch) steps per epoch (the last batch is partial),
    times the epochs; ``max_steps`` > 0 wins."""
    if max_steps and max_steps > 0:
        return int(max_steps)
    return math.ceil(epochs * math.ceil(examples / effective_batch))


def epochs_trained(examples: int, effective_batch: int, epochs: float, max_steps: int = -1) -> float:
    """Epochs the run covers: ``epochs``, or ``max_steps`` / steps per epoch when that is set."""
    if max_steps and max_steps > 0:
        return max_steps / math.ceil(examples / effective_batch)
    return float(epochs)


def training_flops(active_parameters: int, tokens: float, squared_lengths: float, layers: int,
                   attention_width: int) -> float:
    """Model FLOPs of training, as PaLM's MFU accounting (Chowdhery et al. 2022, appendix B): 6 N per
    token (forward 2N + backward 4N, N the parameters active per token) plus attention 12 x layers x
    d_attn x sequence length per token, i.e. 12 x layers x d_attn x sum of squared lengths, from the real
    lengths. Activation recomputation is not counted (MFU, not hardware FLOPs utilisation)."""
    return 6.0 * active_parameters * tokens + 12.0 * layers * attention_width * squared_lengths


def wall_seconds_assumed(flops: float, devices: int, peak_tflops: float, mfu: float, startup_s: float,
                         communication_s: float = 0.0) -> float:
    """Fixed start-up + the longer of computing (FLOPs at ``mfu`` of the devices' peak) and communicating
    (assumed to overlap with computing: a floor, not a sum)."""
    return startup_s + max(flops / (devices * peak_tflops * 1e12 * mfu), communication_s)


def zero_stage(deepspeed: str | None) -> int:
    """The ZeRO stage of ``launch.training.deepspeed``: a preset name (zero2, zero3, zero3_offload) or a JSON file."""
    if not deepspeed:
        return 0
    name = Path(deepspeed).name
    for stage in (3, 2, 1):
        if f"zero{stage}" in name:
            return stage
    try:
        return int(json.loads(Path(deepspeed).read_text(encoding="utf-8"))["zero_optimization"]["stage"])
    except (OSError, KeyError, ValueError, TypeError):
        return 0


def communication_bytes_per_gpu(total_parameters: int, world: int, stage: int, micro_batches: int,
                                steps: int) -> float:
    """Bytes each GPU sends for the weights and gradients (bf16, 2 B/param), ring collectives
    ((world - 1) / world of the data): ZeRO-3 gathers the parameters for the forward and again for the
    backward and reduce-scatters the gradients on every micro-batch (3 x 2N); ZeRO-1/2 reduce the
    gradients on every micro-batch (2N); plain data parallel all-reduces them once per optimizer step
    (2 x 2N). Nothing on one process."""
    if world <= 1:
        return 0.0
    share = (world - 1) / world
    if stage == 3:
        return micro_batches * 3 * 2 * total_parameters * share
    if stage in (1, 2):
        return micro_batches * 2 * total_parameters * share
    return steps * 2 * 2 * total_parameters * share


def communication_seconds(total_parameters: int, world: int, stage: int, micro_batches: int, steps: int,
                          nodes: int, hpz_partition_size: int, inter_node_GBps: float,
                          intra_node_GBps: float | None) -> float:
    """Seconds of weight and gradient traffic per GPU (``communication_bytes_per_gpu``) at the links it
    crosses: across nodes at ``inter_node_GBps``, within one node at ``intra_node_GBps``.

    ZeRO-3 with ZeRO++ hierarchical partitioning (``zero_hpz_partition_size`` > 1, several nodes; Wang et
    al. 2023, "ZeRO++"): the first forward gather after each optimizer step still crosses the nodes (it
    also fills each node's secondary copy of the weights); every other gather of the step (the backward's,
    and both of each further micro-batch) reads that copy within the node; the gradients' reduce-scatter
    crosses the nodes on every micro-batch. With 2 micro-batches per step that halves the traffic across
    the nodes (3 of 6 transfers of 2 B/param)."""
    if world <= 1:
        return 0.0
    if stage == 3 and nodes > 1 and hpz_partition_size > 1 and intra_node_GBps:
        weights = 2 * total_parameters
        crossing = (steps + micro_batches) * weights * (world - 1) / world
        within = max(2 * micro_batches - steps, 0) * weights * (hpz_partition_size - 1) / hpz_partition_size
        return crossing / (inter_node_GBps * 1e9) + within / (intra_node_GBps * 1e9)
    bandwidth = inter_node_GBps if nodes > 1 else intra_node_GBps
    sent = communication_bytes_per_gpu(total_parameters, world, stage, micro_batches, steps)
    return sent / (bandwidth * 1e9) if sent and bandwidth else 0.0


def hpz_partition_size(deepspeed_file: Path | None) -> int:
    """``zero_optimization.zero_hpz_partition_size`` of a DeepSpeed JSON (1: none, or no file)."""
    if deepspeed_file is None:
        return 1
    try:
        zero = json.loads(Path(deepspeed_file).read_text(encoding="utf-8")).get("zero_optimization", {})
        return int(zero.get("zero_hpz_partition_size", 1))
    except (OSError, ValueError, TypeError, AttributeError):
        return 1


def wall_seconds_measured(tokens: float, tokens_per_s: float, overhead_s: float) -> float:
    """Measured overhead (model load, tokenization, save) + tokens at the measured training throughput."""
    return overhead_s + tokens / tokens_per_s


def checkpoint_bytes(total_parameters: int, bf16: bool) -> int:
    return total_parameters * (CHECKPOINT_BYTES_BF16 if bf16 else CHECKPOINT_BYTES_FP32)


def peak_checkpoint_bytes(total_parameters: int, bf16: bool, save_total_limit: int) -> int:
    """At most ``save_total_limit`` + 1 checkpoints at once: HF's Trainer deletes the oldest only after it
    has written the new one."""
    return (save_total_limit + 1) * checkpoint_bytes(total_parameters, bf16)


def judge_prompt_tokens(request_chars: int, answers_in_prompts: int, answer_tokens: int) -> int:
    """Judge prompt tokens: the prompts' own characters / 4 (as the judge's dry run estimates) plus the
    answers they quote (turn 1 quotes one answer, turn 2 both)."""
    return request_chars // 4 + answers_in_prompts * answer_tokens
