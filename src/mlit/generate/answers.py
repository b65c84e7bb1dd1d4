"""MT-Bench-X answers with batched Hugging Face generation or vLLM (``generation.backend``).

Both turns: turn 1 for every question of a batch, then turn 2 conditioned on the model's own turn-1
answer. MT-Bench's per-category temperatures (greedy where 0). Answers are appended to
``<out>.partial`` as each batch finishes, so a killed job resumes with the questions it has not
answered; the final file, in FastChat's answer format, is written atomically at the end.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

from tqdm import tqdm

from mlit.model.base import read_base_info
from mlit.model.chat_format import with_system_message
from mlit.files import append_jsonl, read_jsonl, write_jsonl
from mlit.data.mtbench import TEMPERATURE, load_questions


class ChatStop:
    """Where an answer ends: the chat format's end-of-turn text (``</s>`` for opengptx), as a token id
    where it is one token of the vocabulary, else as a stop string; plus the system messages of the
    chat format. Read from the model's ``mlit_base.json`` (see ``mlit.model.base``)."""

    def __init__(self, info: dict, eos_token_ids: list[int]):
        chat = info["chat_format"]
        self.system_messages = chat.get("system_messages") or {}
        self.end_of_turn = chat.get("end_of_turn") or None
        token_id = info.get("end_of_turn_token_id")
        self.stop_token_ids = sorted({*eos_token_ids, *([token_id] if token_id is not None else [])})
        # a multi-token end of turn stops by its text
        self.stop_strings = [self.end_of_turn] if self.end_of_turn and token_id is None else []

    def cut(self, text: str) -> str:
        if self.end_of_turn and self.end_of_turn in text:
            text = text[:text.index(self.end_of_turn)]
        return text.strip()


def eos_ids(value) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Generator:
    def __init__(self, model_dir: str, max_new_tokens: int, batch_size: int,
                 cache_implementation: str | None = "static"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        info = read_base_info(model_dir)
        trust = bool(info.get("trust_remote_code"))
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto", trust_remote_code=trust)
        self.model = self.model.to(self.device).eval()
        self.stop = ChatStop(info, eos_ids(self.model.generation_config.eos_token_id))
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = 0
        self.batch_size = batch_size
        # "static": a preallocated KV cache (no per-step concatenation); "dynamic": transformers' default
        self.cache_implementation = None if cache_implementation == "dynamic" else cache_implementation
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None)
        self.generated_tokens = 0  # new tokens up to each answer's end, for throughput figures

    def render(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: list[str], temperature: float, seed: int) -> list[str]:
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        length = encoded["input_ids"].shape[1]
        if self.max_positions and length + self.max_new_tokens > self.max_positions:
            keep = self.max_positions - self.max_new_tokens  # keep the end: the question being answered
            encoded = {key: value[:, -keep:] for key, value in encoded.items()}
        encoded = {key: value.to(self.device) for key, value in encoded.items()}
        self.torch.manual_seed(seed)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0} if temperature >= 1e-4 else \
            {"do_sample": False}
        if self.stop.stop_strings:
            sampling.update(stop_strings=self.stop.stop_strings, tokenizer=self.tokenizer)
        with self.torch.no_grad():
            output = self.model.generate(**encoded, max_new_tokens=self.max_new_tokens,
                                         min_new_tokens=self.min_new_tokens or None,
                                         cache_implementation=self.cache_implementation,
                                         eos_token_id=self.stop.stop_token_ids or None,
                                         pad_token_id=self.tokenizer.pad_token_id, **sampling)
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        ends = set(self.stop.stop_token_ids) | {self.tokenizer.pad_token_id}
        for row in new_tokens.tolist():
            self.generated_tokens += next((i + 1 for i, t in enumerate(row) if t in ends), len(row))
        return [self.stop.cut(text) for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


class VLLMGenerator:
    """The same interface on vLLM's offline engine. Prompts are rendered and tokenized by the model's
    own tokenizer and chat template (exactly as for ``hf``) and passed as token ids; outputs are
    decoded by the same tokenizer, so under greedy decoding both backends give the same answers."""

    def __init__(self, model_dir: str, max_new_tokens: int, batch_size: int, settings: dict | None = None):
        from transformers import AutoConfig, AutoTokenizer
        from vllm import LLM

        settings = settings or {}
        info = read_base_info(model_dir)
        trust = bool(info.get("trust_remote_code"))
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust)
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust)
        self.stop = ChatStop(info, eos_ids(getattr(config, "eos_token_id", None)))
        self.max_positions = getattr(config, "max_position_embeddings", None)
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = 0
        self.batch_size = batch_size
        self.generated_tokens = 0
        import torch

        # vLLM's CPU sampler fails on per-request seeds ("CPU Generator does not use offset"): there,
        # sampled answers follow the engine seed (generation.seed) instead
        self.per_request_seed = torch.cuda.is_available()
        self.llm = LLM(model=model_dir, dtype=settings.get("vllm_dtype", "auto"), seed=settings.get("seed", 42),
                       max_model_len=self.max_positions, enforce_eager=settings.get("vllm_enforce_eager", False),
                       trust_remote_code=trust,
                       gpu_memory_utilization=settings.get("vllm_gpu_memory_utilization", 0.85))

    def render(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: list[str], temperature: float, seed: int) -> list[str]:
        from vllm import SamplingParams

        keep = self.max_positions - self.max_new_tokens if self.max_positions else None
        inputs = []
        for prompt in prompts:
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            inputs.append({"prompt_token_ids": ids[-keep:] if keep else ids})
        greedy = temperature < 1e-4
        params = [SamplingParams(temperature=0.0 if greedy else temperature, top_p=1.0,
                                 max_tokens=self.max_new_tokens,
                                 seed=seed + index if self.per_request_seed and not greedy else None,
                                 min_tokens=self.min_new_tokens,
                                 stop_token_ids=self.stop.stop_token_ids or None,
                                 stop=self.stop.stop_strings or None,
                                 skip_special_tokens=True)
                  for index in range(len(prompts))]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        self.generated_tokens += sum(len(output.outputs[0].token_ids) for output in outputs)
        return [self.stop.cut(self.tokenizer.decode(output.outputs[0].token_ids, skip_special_tokens=True))
                for output in outputs]


def make_generator(model_dir: str, settings: dict):
    backend = settings.get("backend", "hf")
    if backend == "vllm":
        return VLLMGenerator(model_dir, settings["max_new_tokens"], settings.get("batch_size", 16), settings)
    if backend != "hf":
        raise ValueError(f"generation.backend: '{backend}' is not a backend; allowed: hf, vllm")
    return Generator(model_dir, settings["max_new_tokens"], settings.get("batch_size", 16),
                     settings.get("hf_cache", "static"))


def batch_seed(seed: int, question_ids: list[str], turn: int) -> int:
    digest = hashlib.sha256(f"{seed}\x00{turn}\x00{','.join(question_ids)}".encode()).hexdigest()
    return int(digest[:8], 16)


def first_turn(question: dict, lang: str, system_message: str, system_messages: dict[str, str]) -> list[dict]:
    """Turn 1 of a question, with the system message of ``generation.system_message``
    (question_language: MT-Bench-X's choice; english; none) where the chat format has them."""
    policy = "own_language" if system_message == "question_language" else system_message
    return with_system_message([{"role": "user", "content": question["turns"][0]}], lang, policy, system_messages)


def answer_questions(generator: Generator, questions: list[dict], out_path: Path, model_id: str, seed: int,
                     log=print, lang: str | None = None, system_message: str = "question_language") -> list[dict]:
    """Answer both turns of every question; resumable through ``<out_path>.partial``."""
    lang = lang or out_path.stem
    system_messages = generator.stop.system_messages
    partial = out_path.with_name(out_path.name + ".partial")
    done = {row["question_id"]: row for row in read_jsonl(partial, tolerate_torn_tail=True)} \
        if partial.exists() else {}
    if done:
        write_jsonl(partial, done.values())  # drop a torn last line before appending
        log(f"resuming {out_path}: {len(done)} of {len(questions)} questions already answered")
    todo = [q for q in questions if q["question_id"] not in done]
    if questions and not done:
        log(f"rendered prompt of the first {lang} question:\n"
            + generator.render(first_turn(questions[0], lang, system_message, system_messages)))
    groups: dict[float, list[dict]] = {}
    for question in todo:
        groups.setdefault(TEMPERATURE[question["category"]], []).append(question)
    bar = tqdm(total=len(todo), desc=f"answers {out_path.parent.name}/{out_path.stem}", unit="question")
    for temperature, group in sorted(groups.items()):
        # similar prompt lengths in a batch: less left padding (answers are written per question, so
        # the order inside a group changes nothing in the output)
        group = sorted(group, key=lambda q: len(q["turns"][0]))
        for start in range(0, len(group), generator.batch_size):
            batch = group[start : start + generator.batch_size]
            ids = [q["question_id"] for q in batch]
            conversations = [first_turn(q, lang, system_message, system_messages) for q in batch]
            first = generator.generate([generator.render(c) for c in conversations], temperature,
                                       batch_seed(seed, ids, 1))
            for conversation, answer, question in zip(conversations, first, batch):
                conversation += [{"role": "assistant", "content": answer},
                                 {"role": "user", "content": question["turns"][1]}]
            second = generator.generate([generator.render(c) for c in conversations], temperature,
                                        batch_seed(seed, ids, 2))
            for question, answer_1, answer_2 in zip(batch, first, second):
                row = {"question_id": question["question_id"], "answer_id": uuid.uuid4().hex,
                       "model_id": model_id, "choices": [{"index": 0, "turns": [answer_1, answer_2]}],
                       "tstamp": time.time()}
                append_jsonl(partial, row)
                done[row["question_id"]] = row
            bar.update(len(batch))
    bar.close()
    rows = [done[q["question_id"]] for q in questions]
    write_jsonl(out_path, rows)
    partial.unlink(missing_ok=True)
    return rows


def generate_all(model_dir: str, bench_dir: str, languages: list[str], out_dir: Path, model_id: str,
                 settings: dict) -> None:
    generator = make_generator(model_dir, settings)
    print(f"backend {settings.get('backend', 'hf')}, batch size {generator.batch_size}", flush=True)
    for lang in languages:
        questions = load_questions(bench_dir, lang, settings.get("questions_per_category"))
        started = time.time()
        rows = answer_questions(generator, questions, out_dir / f"{lang}.jsonl", model_id, settings.get("seed", 42),
                                lang=lang, system_message=settings.get("system_message", "question_language"))
        print(f"{lang}: {len(rows)} questions answered in {time.time() - started:.1f} s")
