"""Stand-ins for the study's hub checkpoints, built locally (no hub at test time):

- ``build_mixtral_standin``: Mixtral-8x7B-v0.1 in shape: the Mixtral architecture at tiny size, the real
  Mistral v1 32k sentencepiece tokenizer (``tests/assets/mistral-7b-v0.1-tokenizer``, from the PyPI
  package mistral-common, Apache-2.0), no chat template, no pad token.
- ``build_remote_code_standin``: the study's 7B model in shape: model and configuration code in the
  checkpoint (``auto_map``, a ``model_type`` transformers does not know) and a slow-only sentencepiece
  tokenizer whose code is in the checkpoint too, so it loads only with ``trust_remote_code``.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
MISTRAL_TOKENIZER = ASSETS / "mistral-7b-v0.1-tokenizer" / "tokenizer.model"

# the real Mixtral-8x7B-v0.1 tokenizer_config.json, less its added_tokens_decoder: no pad, no template
MISTRAL_TOKENIZER_CONFIG = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                            "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False, "legacy": True,
                            "pad_token": None, "model_max_length": 1000000000000000019884624838656,
                            "clean_up_tokenization_spaces": False, "sp_model_kwargs": {}}


def build_mixtral_standin(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = MixtralConfig(hidden_size=128, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, vocab_size=32000,
                           max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                           output_router_logits=False)
    MixtralForCausalLM(config).save_pretrained(out)
    shutil.copy(MISTRAL_TOKENIZER, out / "tokenizer.model")
    (out / "tokenizer_config.json").write_text(json.dumps(MISTRAL_TOKENIZER_CONFIG, indent=2))
    return out


CONFIGURATION_CODE = '''from transformers import LlamaConfig


class PolyglotConfig(LlamaConfig):
    model_type = "polyglot_llama"
'''

MODELING_CODE = '''from transformers import LlamaForCausalLM

from .configuration_polyglot import PolyglotConfig


class PolyglotForCausalLM(LlamaForCausalLM):
    config_class = PolyglotConfig
'''

TOKENIZATION_CODE = '''from transformers.tokenization_utils_sentencepiece import SentencePieceBackend


class PolyglotTokenizer(SentencePieceBackend):
    """A slow-only sentencepiece tokenizer shipped as code in the checkpoint."""

    vocab_files_names = {"vocab_file": "tokenizer.model"}
    model_input_names = ["input_ids", "attention_mask"]
    is_fast = False

    def __init__(self, vocab_file, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token=None, **kwargs):
        super().__init__(vocab_file=vocab_file, bos_token=bos_token, eos_token=eos_token, unk_token=unk_token,
                         pad_token=pad_token, **kwargs)

    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        return [self.bos_token_id] + token_ids_0 + (token_ids_1 or [])
'''


def train_sentencepiece(texts: list[str], vocab_size: int) -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1,
                                   eos_id=2, pad_id=-1, num_threads=2, minloglevel=2)
    return model.getvalue()


def build_remote_code_standin(out: Path, texts: list[str], vocab_size: int = 1200, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.model").write_bytes(train_sentencepiece(texts, vocab_size))
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                         bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(out)
    saved = json.loads((out / "config.json").read_text())
    saved.update(model_type="polyglot_llama", architectures=["PolyglotForCausalLM"],
                 auto_map={"AutoConfig": "configuration_polyglot.PolyglotConfig",
                           "AutoModelForCausalLM": "modeling_polyglot.PolyglotForCausalLM"})
    (out / "config.json").write_text(json.dumps(saved, indent=2))
    (out / "configuration_polyglot.py").write_text(CONFIGURATION_CODE)
    (out / "modeling_polyglot.py").write_text(MODELING_CODE)
    (out / "tokenization_polyglot.py").write_text(TOKENIZATION_CODE)
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PolyglotTokenizer", "auto_map": {"AutoTokenizer": ["tokenization_polyglot.PolyglotTokenizer",
                                                                               None]},
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 2048}, indent=2))
    return out
