"""Base models as the grid uses them: checked before any job, fetched once, prepared once.

A *prepared* base model (``results/base_models/<name>/``) is what every training and generation job
reads, with the hub switched off: the checkpoint's files (linked, not copied), a fast tokenizer with
the chat template of the config and a pad token, and ``mlit_base.json`` saying how it was prepared
(chat format, end-of-turn text and token, ``trust_remote_code``, tokenizer conversion check). Every
model fine-tuned from it carries the same ``mlit_base.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mlit.model.chat_format import ChatFormatError, check_markers, chat_format, resolve_template_setting
from mlit.files import write_json
from mlit.model.fingerprint import checkpoint_fingerprint
from mlit.safe_paths import checked, fresh_dir, publish_dir, remove_tree

BASE_INFO = "mlit_base.json"
# files of the checkpoint's tokenizer: replaced by the prepared tokenizer
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "chat_template.jinja", "chat_template.json", "added_tokens.json", "vocab.json", "merges.txt"}


class BaseModelError(ValueError):
    """A base model that cannot be used as configured; the message names the config key and the fix."""


# --- checks at config time (no job has run) ---------------------------------------------------------

def needs_remote_code(model_dir: Path) -> list[str]:
    """Why ``model_dir`` loads only with ``trust_remote_code`` (empty when it does not)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    reasons = []
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("auto_map"):
        reasons.append(f"config.json has auto_map {sorted(config['auto_map'])}")
    elif config.get("model_type") not in CONFIG_MAPPING_NAMES:
        reasons.append(f"config.json has model_type '{config.get('model_type')}', unknown to transformers")
    tokenizer_config = model_dir / "tokenizer_config.json"
    if tokenizer_config.exists() and json.loads(tokenizer_config.read_text(encoding="utf-8")).get("auto_map"):
        reasons.append("tokenizer_config.json has an auto_map (tokenizer code in the checkpoint)")
    return reasons


def local_chat_template(model_dir: Path) -> str | None:
    jinja = model_dir / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text(encoding="utf-8")
    tokenizer_config = model_dir / "tokenizer_config.json"
    if tokenizer_config.exists():
        return json.loads(tokenizer_config.read_text(encoding="utf-8")).get("chat_template")
    return None


# A tokenizer is one of these (fast, sentencepiece, BPE or WordPiece vocabulary), or code the checkpoint's
# tokenizer_config.json points to (auto_map); weights are safetensors or PyTorch files, whole or sharded.
TOKENIZER_VOCABULARIES = ("tokenizer.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.json",
                   "vocab.txt")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "pytorch_model.bin.index.json")


def missing_checkpoint_files(path: Path) -> list[str]:
    """What a model directory with a config.json lacks to load: its tokenizer files, its weights."""
    missing = []
    tokenizer_config = path / "tokenizer_config.json"
    remote_tokenizer = False
    if tokenizer_config.is_file():
        try:
            remote_tokenizer = "AutoTokenizer" in (json.loads(tokenizer_config.read_text(encoding="utf-8"))
                                                   .get("auto_map") or {})
        except (ValueError, AttributeError):
            remote_tokenizer = False
    if not remote_tokenizer and not any((path / name).is_file() for name in TOKENIZER_VOCABULARIES):
        missing.append(f"no tokenizer files (none of {', '.join(TOKENIZER_VOCABULARIES)})")
    if not any(any(path.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        missing.append(f"no weights (no {' or '.join(WEIGHT_PATTERNS[:2])})")
    return missing


def check_local_model(path: Path, key: str, trust_remote_code: bool, template_setting: str,
                      template_key: str) -> None:
    """A ``base_models[].path`` directory: a model directory, loadable with the configured
    ``trust_remote_code``, with a usable chat template. Raises BaseModelError naming the key."""
    if not path.is_dir():
        raise BaseModelError(f"{key}.path: '{path}' does not exist or is not a directory; give a model directory "
                             "(saved with save_pretrained), or a hub id under hub:")
    if not (path / "config.json").exists():
        raise BaseModelError(f"{key}.path: '{path}' is not a model directory (no config.json); give the directory "
                             "that holds config.json and the weights")
    missing = missing_checkpoint_files(path)
    if missing:
        raise BaseModelError(f"{key}.path: '{path}' has config.json but {'; '.join(missing)}; copy the whole "
                             "checkpoint (save_pretrained of the model and of its tokenizer) into it")
    reasons = needs_remote_code(path)
    if reasons and not trust_remote_code:
        raise BaseModelError(f"{key}.trust_remote_code: '{path}' runs code from the checkpoint ({'; '.join(reasons)});"
                             f" review that code, then set {key}.trust_remote_code: true")
    try:
        if resolve_template_setting(template_setting, template_key) == "model":
            check_markers(local_chat_template(path), template_key, f"'{path}'")
    except ChatFormatError as error:
        raise BaseModelError(str(error)) from None


# --- fetching (a local job: compute nodes are often offline) -------------------------------------------

# What a checkpoint needs besides its weights: configs, tokenizer files of every kind, chat templates, the
# code of a trust_remote_code model. Weights: safetensors where the repository has them (transformers loads
# those first), else PyTorch's .bin; never the original training framework's copies (Mixtral's repository
# also holds consolidated.*.pt, about 97 GB, that transformers never reads).
CHECKPOINT_FILES = ["*.json", "*.model", "*.tiktoken", "*.txt", "*.jinja", "*.py"]
SAFETENSORS = ["*.safetensors", "*.safetensors.index.json"]
PYTORCH_BIN = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]


def fetch_patterns(repo_files: list[str]) -> list[str]:
    """``allow_patterns`` for ``snapshot_download`` of a repository holding ``repo_files``: one weights format."""
    has_safetensors = any(name.endswith(".safetensors") for name in repo_files)
    return CHECKPOINT_FILES + (SAFETENSORS if has_safetensors else PYTORCH_BIN)


def fetch(repo_id: str, revision: str | None, out_dir: Path) -> Path:
    """Download a hub checkpoint once into ``out_dir`` (written to ``<out>.tmp``, then renamed): its configs,
    tokenizer and code and one weights format (``fetch_patterns``), not every file of the repository."""
    from huggingface_hub import HfApi, snapshot_download

    tmp = checked(out_dir).with_name(out_dir.name + ".tmp")
    patterns = fetch_patterns(HfApi().list_repo_files(repo_id, revision=revision))
    print(f"fetching {repo_id}@{revision or 'main'}: {' '.join(patterns)}", flush=True)
    snapshot_download(repo_id, revision=revision, local_dir=str(tmp), allow_patterns=patterns)  # resumes a partial download
    remove_tree(tmp / ".cache")
    return publish_dir(tmp, out_dir)


# --- preparation -------------------------------------------------------------------------------------

def load_tokenizer(source: str | Path, trust_remote_code: bool, key: str):
    from transformers import AutoTokenizer

    try:  # an explicit flag: never the interactive "run custom code? [y/N]" prompt inside a batch job
        return AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    except ValueError as error:
        if "trust_remote_code" in str(error):
            raise BaseModelError(f"{key}.trust_remote_code: the tokenizer of {source} needs code from the "
                                 f"checkpoint; review it, then set {key}.trust_remote_code: true") from None
        raise


def special_token_layout(slow) -> tuple[list[int], list[int]]:
    """The special token ids the slow tokenizer adds before and after a text."""
    plain = slow("a b", add_special_tokens=False)["input_ids"]
    full = slow("a b")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    raise BaseModelError("cannot tell which special tokens the slow tokenizer adds around a text")


def convert_to_fast(slow, sample_texts: dict[str, list[str]], source: str | Path):
    """A fast tokenizer equal to ``slow`` (a sentencepiece or python tokenizer, possibly from code in
    the checkpoint): converted once, its token ids checked equal on a sample of every language.
    TRL's assistant masks need the offsets only a fast tokenizer has."""
    from tokenizers import processors
    from transformers import TokenizersBackend
    from transformers.convert_slow_tokenizer import (SLOW_TO_FAST_CONVERTERS, SentencePieceExtractor, SpmConverter,
                                                     convert_slow_tokenizer)

    if type(slow).__name__ in SLOW_TO_FAST_CONVERTERS:
        backend = convert_slow_tokenizer(slow)
    else:  # a class transformers does not know (code in the checkpoint): convert its sentencepiece model
        vocab_file = str(getattr(slow, "vocab_file", "") or "")
        if not vocab_file.endswith(".model"):
            raise BaseModelError(f"{source}: the tokenizer ({type(slow).__name__}) is slow-only and not a "
                                 "sentencepiece model; convert it to a fast tokenizer (tokenizer.json) first")
        proto = SentencePieceExtractor(vocab_file).proto
        vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)} if proto.trainer_spec.model_type == 2 \
            else [(piece.piece, piece.score) for piece in proto.pieces]  # 2: BPE, else unigram
        backend = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=getattr(slow, "legacy", True))
    before, after = special_token_layout(slow)
    special = {tid: slow.convert_ids_to_tokens(tid) for tid in before + after}
    single = " ".join([*(f"{special[t]}" for t in before), "$A", *(f"{special[t]}" for t in after)])
    pair = " ".join([single, "$B"])
    backend.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(token, tid) for tid, token in special.items()])
    fast = TokenizersBackend(
        tokenizer_object=backend, bos_token=slow.bos_token, eos_token=slow.eos_token, unk_token=slow.unk_token,
        pad_token=slow.pad_token, model_max_length=slow.model_max_length)
    counts = {}
    for lang, texts in sample_texts.items():
        for text in texts:
            expected, got = slow(text)["input_ids"], fast(text)["input_ids"]
            if expected != got:
                raise BaseModelError(
                    f"{source}: the converted fast tokenizer differs from the slow one on a {lang} text "
                    f"({text[:60]!r}...: slow {expected[:12]}..., fast {got[:12]}...); provide a tokenizer.json")
        counts[lang] = len(texts)
    return fast, counts


def sample_texts(bench_dir: str | Path, languages: list[str]) -> dict[str, list[str]]:
    """Per language, the MT-Bench-X question turns: a sample to check a tokenizer conversion on."""
    from mlit.files import read_jsonl

    return {lang: [turn for row in read_jsonl(Path(bench_dir) / lang / "question.jsonl") for turn in row["turns"]]
            for lang in languages}


def single_token_id(tokenizer, text: str) -> int | None:
    """The id of ``text`` if it is one token of the vocabulary (e.g. ``</s>``), else None."""
    return tokenizer.get_vocab().get(text)


def link_checkpoint(source: Path, out_dir: Path) -> list[str]:
    """Symlink the checkpoint's files (weights, config, code) into ``out_dir``, except its tokenizer."""
    linked = []
    for path in sorted(source.iterdir()):
        if path.name in TOKENIZER_FILES or path.name.startswith("."):
            continue
        os.symlink(path.resolve(), out_dir / path.name)
        linked.append(path.name)
    return linked


def prepare(spec: dict, sample_texts: dict[str, list[str]], out_dir: Path) -> dict:
    """Prepare a base model from ``spec`` (source directory, chat_template, trust_remote_code, name)
    into ``out_dir``; returns what ``mlit_base.json`` records."""
    from transformers import AutoConfig

    checked(out_dir)
    key = f"base_models[{spec['name']}]"
    source = Path(spec["source"])
    trust = bool(spec["trust_remote_code"])
    check_local_model(source, key, trust, spec["chat_template"], spec["chat_template_key"])
    tokenizer = load_tokenizer(source, trust, key)
    conversion = None
    if not tokenizer.is_fast:
        tokenizer, ids_checked = convert_to_fast(tokenizer, sample_texts, source)
        conversion = {"from": "slow", "ids_checked_equal": ids_checked}
    fmt = chat_format(spec["chat_template"], spec["chat_template_key"], tokenizer)
    tokenizer.chat_template = fmt.template
    pad_from = None
    if tokenizer.pad_token is None:
        # no new token: the unknown token where there is one, else the end of sequence (the collator masks
        # padding by position, so the end-of-turn token is still trained)
        pad_from = "unk_token" if tokenizer.unk_token and tokenizer.unk_token != tokenizer.eos_token else "eos_token"
        tokenizer.pad_token = getattr(tokenizer, pad_from)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    fresh_dir(tmp)
    linked = link_checkpoint(source, tmp)
    tokenizer.save_pretrained(str(tmp))
    AutoConfig.from_pretrained(str(tmp), trust_remote_code=trust)  # the linked checkpoint loads
    info = {"name": spec["name"], "source": str(source), "trust_remote_code": trust,
            "chat_format": fmt.to_json(), "end_of_turn_token_id": single_token_id(tokenizer, fmt.end_of_turn),
            "pad_token": tokenizer.pad_token, "pad_token_from": pad_from, "tokenizer_conversion": conversion,
            "linked_files": linked, "vocabulary": len(tokenizer),
            "source_fingerprint": checkpoint_fingerprint(source)}  # checked at each start (Grid.check_prepared_sources)
    write_json(tmp / BASE_INFO, info)
    publish_dir(tmp, out_dir)
    return info


def read_base_info(model_dir: str | Path) -> dict:
    """``mlit_base.json`` of a prepared base model or a model fine-tuned from one; for a model from
    elsewhere: its own template, its EOS as end of turn, no remote code."""
    path = Path(model_dir) / BASE_INFO
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"trust_remote_code": False, "chat_format": {"name": "model", "end_of_turn": None, "system_messages": {}},
            "end_of_turn_token_id": None}
