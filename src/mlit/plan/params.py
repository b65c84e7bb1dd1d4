"""Parameters of a model from its config alone: total, and active per token (MoE).

The model is built on PyTorch's ``meta`` device (shapes, no memory, no weights), so the count is
exact for any architecture transformers knows; a mixture of experts activates ``num_experts_per_tok``
of its ``num_local_experts`` experts per token, plus everything shared (attention, router, norms,
embeddings, shared experts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

EXPERT_COUNT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
ACTIVE_EXPERT_KEYS = ("num_experts_per_tok", "moe_top_k", "top_k")


class ModelShapeError(ValueError):
    """A config the parameters cannot be counted from; the message names where it came from."""


@dataclass(frozen=True)
class ModelShape:
    total: int            # every parameter (disk, optimizer states)
    active: int           # per token (FLOPs): shared + experts_per_tok / experts of the expert parameters
    expert: int           # parameters inside routed experts
    experts: int | None
    experts_per_tok: int | None
    layers: int
    attention_width: int  # heads x head_dim: the d_attn of the attention FLOPs
    dtype_bytes: int      # of the checkpoint's weights (torch_dtype / dtype), for the published model
    source: str


def _first(config: dict, keys: tuple[str, ...]):
    return next((config[key] for key in keys if config.get(key) is not None), None)


def _dtype_bytes(config: dict) -> int:
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return 4 if "32" in dtype else 2


def _is_expert(name: str) -> bool:
    """A routed expert's parameter (Mixtral ``...mlp.experts.0.w1`` or fused ``...mlp.experts.gate_up_proj``;
    not a shared expert, not the router)."""
    return ".experts." in name or name.endswith(".experts")


def shape_from_config(config: dict, source: str, trust_remote_code: bool = False) -> ModelShape:
    """Count the parameters of the model ``config`` (config.json's fields) describes."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(config)
    model_type = fields.pop("model_type", None)
    if not model_type:
        raise ModelShapeError(f"{source}: no model_type; give the checkpoint's config.json fields")
    try:
        hf_config = AutoConfig.for_model(model_type, **fields)
    except (KeyError, ValueError) as error:
        raise ModelShapeError(f"{source}: model_type '{model_type}' is unknown to transformers ({error}); "
                              "give a config of a known type (llama, mistral, mixtral, ...)") from None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config, trust_remote_code=trust_remote_code)
    total = expert = 0
    for name, parameter in model.named_parameters():  # tied embeddings are listed once
        total += parameter.numel()
        if _is_expert(name):
            expert += parameter.numel()
    experts = _first(config, EXPERT_COUNT_KEYS)
    per_token = _first(config, ACTIVE_EXPERT_KEYS)
    if expert and not (experts and per_token):
        raise ModelShapeError(f"{source}: the model has expert parameters but the config names no expert count "
                              f"({EXPERT_COUNT_KEYS}) or experts per token ({ACTIVE_EXPERT_KEYS})")
    active = total - expert + (expert * per_token // experts if expert else 0)
    heads = hf_config.num_attention_heads
    head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // heads
    return ModelShape(total=total, active=active, expert=expert, experts=experts if expert else None,
                      experts_per_tok=per_token if expert else None, layers=hf_config.num_hidden_layers,
                      attention_width=heads * head_dim, dtype_bytes=_dtype_bytes(config), source=source)


def shape_of_model_dir(model_dir: str | Path, trust_remote_code: bool = False) -> ModelShape:
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ModelShapeError(f"{path}: cannot read the model's config ({error})") from None
    return shape_from_config(config, str(path), trust_remote_code)
