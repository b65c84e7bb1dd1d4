"""MT-Bench-X answers with batched Hugging Face generation or vLLM (``generation.backend``).

Both turns, turn 2 conditioned on the model's own turn-1 answer, MT-Bench's per-category temperatures
(greedy where 0). ``hf``: turn 1 for a batch of questions of one temperature, then turn 2. ``vllm``
(``vllm_submission: turn``, the default): every prompt of a turn (all questions, temperatures and
languages of the cell) in one engine call with per-request sampling settings, turn 2 after turn 1; the
engine schedules them itself. Answers are appended to ``<out>.partial`` once both turns of a question
are done (vLLM's turn-1 answers also to ``<out>.turn1.partial``), so a killed job resumes with the
questions it has not answered; the final file, in FastChat's answer format, is written atomically.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import time
import uuid
from pathlib import Path

from tqdm import tqdm

from mlit.model.base import read_base_info
from mlit.model.chat_format import with_system_message
from mlit.files import append_jsonl, read_jsonl, write_jsonl
from mlit.data.mtbench import TEMPERATURE, load_questions
from mlit.generate.prompt_budget import DEFAULT_POLICY, decide, last_records, turn_records
from mlit.generate.partials import answers_fingerprint, keep_matching_partials
from mlit.generate.partials import finish as finish_partials


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


def hf_device_map(setting: str | None, visible_gpus: int) -> str | None:
    """``launch.generation.hf_device_map``: ``auto`` spreads the model over the visible GPUs (accelerate);
    unset, it does so where the job sees more than one GPU (a model too large for one), else the model
    sits on one device."""
    if setting == "auto" or (setting is None and visible_gpus > 1):
        return "auto"
    return None


class Generator:
    """Batched Hugging Face ``generate``. The static KV cache makes transformers compile the forward
    pass on a GPU (minutes per prompt shape); here that happens only with ``compile=True``
    (``launch.generation.hf_compile``): by default the static cache runs uncompiled (on the CPU transformers
    never compiles, so CPU answers are the same either way)."""

    def __init__(self, model_dir: str, max_new_tokens: int, batch_size: int,
                 cache_implementation: str | None = "static", compile: bool = False, device_map: str | None = None,
                 long_prompts: str = DEFAULT_POLICY, dtype: str = "auto", top_k: int | None = 50, log=print):
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
        self.device_map = hf_device_map(device_map, torch.cuda.device_count() if torch.cuda.is_available() else 0)
        self.dtype = generation_dtype(dtype, torch.cuda.is_available(), log)
        if self.device_map:  # layers over the visible GPUs; inputs go where the embedding is
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=self.dtype, trust_remote_code=trust,
                                                              device_map=self.device_map).eval()
            self.device = self.model.device
        else:
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=self.dtype, trust_remote_code=trust)
            self.model = self.model.to(self.device).eval()
        self.compile = compile
        self.stop = ChatStop(info, eos_ids(self.model.generation_config.eos_token_id))
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = 0
        self.batch_size = batch_size
        # "static": a preallocated KV cache (no per-step concatenation); "dynamic": transformers' default
        self.cache_implementation = None if cache_implementation == "dynamic" else cache_implementation
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None)
        self.long_prompts = long_prompts
        self.top_k = top_k
        self.budget_records: list[dict | None] = []  # per prompt of the last call (mlit.generate.prompt_budget)
        self.generated_tokens = 0  # new tokens up to each answer's end, for throughput figures

    def render(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: list[str], temperature: float, seed: int,
                 names: list[str] | None = None) -> list[str]:
        """Answers to ``prompts``; a prompt longer than the context less the answer budget is handled
        by ``generation.long_prompts`` and recorded in ``budget_records`` (one generate call per
        distinct budget; prompts that fit are one batch, as always)."""
        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        decisions = [decide(len(row), self.max_positions, self.max_new_tokens, self.long_prompts,
                            names[index] if names else f"prompt {index}") for index, row in enumerate(ids)]
        self.budget_records = [decision.record for decision in decisions]
        groups: dict[tuple, list[int]] = {}
        for index, decision in enumerate(decisions):
            groups.setdefault((decision.max_new_tokens, decision.keep), []).append(index)
        answers: list[str] = [""] * len(prompts)
        for (max_new_tokens, keep), indices in groups.items():
            rows = [ids[i][-keep:] if keep else ids[i] for i in indices]
            for index, answer in zip(indices, self._generate_ids(rows, temperature, seed, max_new_tokens)):
                answers[index] = answer
        return answers

    def _generate_ids(self, rows: list[list[int]], temperature: float, seed: int, max_new_tokens: int) -> list[str]:
        new_tokens = self.new_token_ids(rows, temperature, seed, max_new_tokens)
        ends = set(self.stop.stop_token_ids) | {self.tokenizer.pad_token_id}
        for row in new_tokens:
            self.generated_tokens += next((i + 1 for i, t in enumerate(row) if t in ends), len(row))
        return [self.stop.cut(text) for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def new_token_ids(self, rows: list[list[int]], temperature: float, seed: int, max_new_tokens: int) -> list[list[int]]:
        """The tokens ``generate`` adds to each prompt (token ids ``rows``), stopped at the chat format's end
        of turn; a row that stops before the longest is padded with the pad token."""
        encoded = self.tokenizer.pad({"input_ids": rows}, padding=True, return_tensors="pt")
        encoded = {key: value.to(self.device) for key, value in encoded.items()}
        self.torch.manual_seed(seed)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": self.top_k or 0} \
            if temperature >= 1e-4 else {"do_sample": False}
        if self.stop.stop_strings:
            sampling.update(stop_strings=self.stop.stop_strings, tokenizer=self.tokenizer)
        with self.torch.no_grad():
            output = self.model.generate(**encoded, max_new_tokens=max_new_tokens,
                                         min_new_tokens=self.min_new_tokens or None,
                                         cache_implementation=self.cache_implementation,
                                         disable_compile=not self.compile,
                                         eos_token_id=self.stop.stop_token_ids or None,
                                         pad_token_id=self.tokenizer.pad_token_id, **sampling)
        return output[:, encoded["input_ids"].shape[1]:].tolist()


def generation_dtype(setting: str | None, on_gpu: bool, log=print) -> str:
    """``generation.dtype`` for a model's weights: ``auto`` (the checkpoint's), or ``float16`` /
    ``bfloat16`` / ``float32`` on a GPU (MT-Bench-X loads fp16 there). On the CPU the checkpoint's dtype
    is kept (what the CPU tests and the demo run in); a different setting is noted in the log."""
    setting = setting or "auto"
    if setting != "auto" and not on_gpu:
        log(f"generation.dtype: {setting} applies on a GPU; on the CPU the checkpoint's dtype is used")
        return "auto"
    return setting


def sampling_top_k(temperature: float, settings_top_k: int | None) -> int:
    """vLLM's ``top_k`` for a request: MT-Bench-X samples with Hugging Face ``generate``, whose default
    ``top_k`` is 50, wherever it samples (temperature >= 1e-4); greedy requests need none (-1: off)."""
    return -1 if temperature < 1e-4 or not settings_top_k else int(settings_top_k)


def vllm_engine_args(model_dir: str, settings: dict, max_model_len: int | None, trust_remote_code: bool,
                     visible_gpus: int) -> dict:
    """The keyword arguments of vLLM's ``LLM(...)`` for one generate job: tensor parallelism over the
    job's GPUs (``gpus``: ``launch.resources.generate.gpus``, per base model; at most the GPUs it sees, 1 for
    vLLM's CPU engine), dtype, engine seed, context length, eager mode, GPU memory share, remote code.
    ``settings``: the job's, with the schema's defaults (``generation_settings``)."""
    gpus = int(settings["gpus"] or 1)  # not a config key: the launch section's launch.resources.generate.gpus
    return {"model": model_dir, "tensor_parallel_size": max(1, min(gpus, visible_gpus)) if visible_gpus else 1,
            "dtype": vllm_dtype(settings, visible_gpus), "seed": settings["seed"],
            "max_model_len": max_model_len, "enforce_eager": settings["vllm_enforce_eager"],
            "gpu_memory_utilization": settings["vllm_gpu_memory_utilization"],
            "trust_remote_code": trust_remote_code}


def generation_settings(settings: dict | None) -> dict:
    """A generate job's settings (``generation`` and ``launch.generation``) with the schema's defaults
    filled in: the workflow's are filled already; a test's, a bench's or a hand-run's may not be."""
    from mlit.settings import section_defaults

    return section_defaults("generation", settings)


def vllm_dtype(settings: dict, visible_gpus: int) -> str:
    """vLLM's dtype: ``vllm_dtype`` where set (not auto), else ``generation.dtype`` on a GPU, else auto."""
    if settings["vllm_dtype"] != "auto":
        return settings["vllm_dtype"]
    return generation_dtype(settings["dtype"], visible_gpus > 0, log=lambda _: None)


class VLLMGenerator:
    """The same interface on vLLM's offline engine, plus ``generate_requests``: any number of prompts,
    each with its own temperature and seed, in one engine call. Prompts are rendered and tokenized by
    the model's own tokenizer and chat template (exactly as for ``hf``) and passed as token ids; outputs
    are decoded by the same tokenizer, so under greedy decoding both backends give the same answers."""

    def __init__(self, model_dir: str, max_new_tokens: int, batch_size: int, settings: dict | None = None,
                 log=print):
        from transformers import AutoConfig, AutoTokenizer
        from vllm import LLM

        settings = generation_settings(settings)
        info = read_base_info(model_dir)
        trust = bool(info.get("trust_remote_code"))
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust)
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust)
        self.stop = ChatStop(info, eos_ids(getattr(config, "eos_token_id", None)))
        self.max_positions = getattr(config, "max_position_embeddings", None)
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = 0
        self.batch_size = batch_size
        self.long_prompts = settings["long_prompts"]
        self.top_k = settings["top_k"]
        self.budget_records: list[dict | None] = []
        self.generated_tokens = 0
        self.engine_calls = 0
        self.log = log
        import torch

        # vLLM's CPU sampler fails on per-request seeds ("CPU Generator does not use offset"): there,
        # sampled answers follow the engine seed (generation.seed) instead
        self.per_request_seed = torch.cuda.is_available()
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        self.engine_args = vllm_engine_args(model_dir, settings, self.max_positions, trust, visible)
        if settings["gpus"] and visible and self.engine_args["tensor_parallel_size"] < int(settings["gpus"]):
            log(f"launch.resources.generate.gpus is {settings['gpus']} but the job sees {visible} GPU(s): "
                f"tensor parallel size {self.engine_args['tensor_parallel_size']}")
        self.llm = LLM(**self.engine_args)

    def render(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate_requests(self, requests: list[tuple[str, float, int]], names: list[str] | None = None) -> list[str]:
        """One engine call for ``(prompt, temperature, seed)`` requests, each with its own sampling
        settings (greedy below 1e-4; top_k 50 when sampling, as Hugging Face generate in MT-Bench-X)
        and answer budget (``generation.long_prompts``, recorded in ``budget_records``); answers in the
        order of the requests."""
        from vllm import SamplingParams

        self.budget_records = []
        if not requests:
            return []
        inputs, params = [], []
        for index, (prompt, temperature, seed) in enumerate(requests):
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            decision = decide(len(ids), self.max_positions, self.max_new_tokens, self.long_prompts,
                              names[index] if names else f"prompt {index}")
            self.budget_records.append(decision.record)
            inputs.append({"prompt_token_ids": ids[-decision.keep:] if decision.keep else ids})
            greedy = temperature < 1e-4
            params.append(SamplingParams(temperature=0.0 if greedy else temperature, top_p=1.0,
                                         top_k=sampling_top_k(temperature, self.top_k),
                                         max_tokens=decision.max_new_tokens,
                                         seed=seed if self.per_request_seed and not greedy else None,
                                         min_tokens=self.min_new_tokens,
                                         stop_token_ids=self.stop.stop_token_ids or None,
                                         stop=self.stop.stop_strings or None,
                                         skip_special_tokens=True))
        self.engine_calls += 1
        self.log(f"vllm engine call {self.engine_calls}: {len(requests)} prompts")
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        self.generated_tokens += sum(len(output.outputs[0].token_ids) for output in outputs)
        return [self.stop.cut(self.tokenizer.decode(output.outputs[0].token_ids, skip_special_tokens=True))
                for output in outputs]

    def generate(self, prompts: list[str], temperature: float, seed: int,
                 names: list[str] | None = None) -> list[str]:
        return self.generate_requests([(prompt, temperature, seed + index) for index, prompt in enumerate(prompts)],
                                      names)


def make_generator(model_dir: str, settings: dict, log=print):
    settings = generation_settings(settings)
    backend = settings["backend"]
    if backend == "vllm":
        return VLLMGenerator(model_dir, settings["max_new_tokens"], settings["vllm_batch_size"], settings, log=log)
    if backend != "hf":
        raise ValueError(f"generation.backend: '{backend}' is not a backend; allowed: hf, vllm")
    return Generator(model_dir, settings["max_new_tokens"], settings["batch_size"],
                     settings["hf_cache"], compile=bool(settings["hf_compile"]),
                     device_map=settings["hf_device_map"],
                     long_prompts=settings["long_prompts"], dtype=settings["dtype"],
                     top_k=settings["top_k"], log=log)


def question_seed(seed: int, question_id: str, turn: int) -> int:
    """A request's own seed (vLLM on a GPU): the same whichever requests share its engine call."""
    return batch_seed(seed, [question_id], turn)


def batch_seed(seed: int, question_ids: list[str], turn: int) -> int:
    digest = hashlib.sha256(f"{seed}\x00{turn}\x00{','.join(question_ids)}".encode()).hexdigest()
    return int(digest[:8], 16)


def first_turn(question: dict, lang: str, system_message: str, system_messages: dict[str, str]) -> list[dict]:
    """Turn 1 of a question, with the system message of ``generation.system_message``
    (question_language: MT-Bench-X's choice; english; none) where the chat format has them."""
    policy = "own_language" if system_message == "question_language" else system_message
    return with_system_message([{"role": "user", "content": question["turns"][0]}], lang, policy, system_messages)


def _answer_row(question: dict, model_id: str, answer_1: str, answer_2: str) -> dict:
    return {"question_id": question["question_id"], "answer_id": uuid.uuid4().hex, "model_id": model_id,
            "choices": [{"index": 0, "turns": [answer_1, answer_2]}], "tstamp": time.time()}


def _read_partial(path: Path) -> dict[str, dict]:
    """The rows of a ``.partial`` file by question id; a torn last line (a killed job) is dropped."""
    if not path.exists():
        return {}
    rows = {row["question_id"]: row for row in read_jsonl(path, tolerate_torn_tail=True)}
    write_jsonl(path, rows.values())  # drop a torn last line before appending
    return rows


def _batch_generate(generator, prompts: list[str], ids: list[str], temperature: float, seed: int,
                    turn: int) -> list[str]:
    """One batch of one temperature: vLLM with a seed per question (the seeds of whole-turn
    submission), hf with one seed for the batch."""
    names = [f"question {qid}, turn {turn}" for qid in ids]
    if hasattr(generator, "generate_requests"):
        return generator.generate_requests([(prompt, temperature, question_seed(seed, qid, turn))
                                            for prompt, qid in zip(prompts, ids)], names=names)
    return generator.generate(prompts, temperature, batch_seed(seed, ids, turn), names=names)


def answer_questions(generator: Generator, questions: list[dict], out_path: Path, model_id: str, seed: int,
                     log=print, lang: str | None = None, system_message: str = "question_language") -> list[dict]:
    """Answer both turns of every question, a batch at a time; resumable through ``<out_path>.partial``."""
    lang = lang or out_path.stem
    system_messages = generator.stop.system_messages
    partial = out_path.with_name(out_path.name + ".partial")
    done = _read_partial(partial)
    if done:
        log(f"resuming {out_path}: {len(done)} of {len(questions)} questions already answered")
    todo = [q for q in questions if q["question_id"] not in done]
    if questions and not done:
        log(f"rendered prompt of the first {lang} question:\n"
            + generator.render(first_turn(questions[0], lang, system_message, system_messages)))
    groups: dict[float, list[dict]] = {}
    for question in todo:
        groups.setdefault(TEMPERATURE[question["category"]], []).append(question)
    bar = tqdm(total=len(todo), desc=f"answers {out_path.parent.name}/{out_path.stem}", unit="question")
    from mlit.progress import Progress

    console = Progress(f"generate {out_path.parent.name} {out_path.stem}", len(todo), "questions (2 turns each)")
    for temperature, group in sorted(groups.items()):
        # similar prompt lengths in a batch: less left padding (answers are written per question, so
        # the order inside a group changes nothing in the output)
        group = sorted(group, key=lambda q: len(q["turns"][0]))
        for start in range(0, len(group), generator.batch_size):
            batch = group[start : start + generator.batch_size]
            ids = [q["question_id"] for q in batch]
            conversations = [first_turn(q, lang, system_message, system_messages) for q in batch]
            first = _batch_generate(generator, [generator.render(c) for c in conversations], ids, temperature,
                                    seed, 1)
            long_first = last_records(generator, len(batch))
            for conversation, answer, question in zip(conversations, first, batch):
                conversation += [{"role": "assistant", "content": answer},
                                 {"role": "user", "content": question["turns"][1]}]
            second = _batch_generate(generator, [generator.render(c) for c in conversations], ids, temperature,
                                     seed, 2)
            for question, answer_1, answer_2, long_1, long_2 in zip(batch, first, second, long_first,
                                                                    last_records(generator, len(batch))):
                row = _answer_row(question, model_id, answer_1, answer_2)
                row["long_prompts"] = turn_records(long_1, long_2)  # prompts that did not fit, per turn
                append_jsonl(partial, row)
                done[row["question_id"]] = row
            bar.update(len(batch))
            console.update(bar.n)
    bar.close()
    rows = [done[q["question_id"]] for q in questions]
    write_jsonl(out_path, rows)
    partial.unlink(missing_ok=True)
    return rows


def answer_whole_turns(generator: VLLMGenerator, tasks: list[tuple[str, list[dict], Path]], model_id: str,
                       seed: int, log=print, system_message: str = "question_language") -> dict[str, list[dict]]:
    """Answer every question of every ``(lang, questions, out_path)`` task with two engine calls: all
    turn-1 prompts in one, then all turn-2 prompts (each on its own turn-1 answer) in one, each request
    with its question's MT-Bench temperature and seed. Resumable: turn-1 answers are kept in
    ``<out>.turn1.partial`` and finished questions in ``<out>.partial``; a resumed job asks only
    what is missing."""
    system_messages = generator.stop.system_messages
    pending: list[tuple[str, dict, Path]] = []  # (lang, question, out_path) without both turns
    done: dict[Path, dict[str, dict]] = {}
    first: dict[tuple[Path, str], str] = {}
    long_first: dict[tuple[Path, str], dict | None] = {}  # turn-1 prompts that did not fit
    for lang, questions, out_path in tasks:
        done[out_path] = _read_partial(out_path.with_name(out_path.name + ".partial"))
        turn1 = _read_partial(out_path.with_name(out_path.name + ".turn1.partial"))
        first.update({(out_path, qid): row["answer"] for qid, row in turn1.items()})
        long_first.update({(out_path, qid): row.get("long_prompt") for qid, row in turn1.items()})
        if done[out_path] or turn1:
            log(f"resuming {out_path}: {len(done[out_path])} of {len(questions)} questions already answered, "
                f"{len(turn1)} turn-1 answers kept")
        elif questions:
            log(f"rendered prompt of the first {lang} question:\n"
                + generator.render(first_turn(questions[0], lang, system_message, system_messages)))
        pending += [(lang, q, out_path) for q in questions if q["question_id"] not in done[out_path]]

    ask = [(lang, q, out) for lang, q, out in pending if (out, q["question_id"]) not in first]
    answers = generator.generate_requests(
        [(generator.render(first_turn(q, lang, system_message, system_messages)), TEMPERATURE[q["category"]],
          question_seed(seed, q["question_id"], 1)) for lang, q, _ in ask],
        names=[f"question {q['question_id']}, turn 1" for _, q, _ in ask])
    for (_, question, out_path), answer, record in zip(ask, answers, last_records(generator, len(ask))):
        append_jsonl(out_path.with_name(out_path.name + ".turn1.partial"),
                     {"question_id": question["question_id"], "answer": answer, "long_prompt": record})
        first[(out_path, question["question_id"])] = answer
        long_first[(out_path, question["question_id"])] = record

    requests = []
    for lang, question, out_path in pending:
        conversation = first_turn(question, lang, system_message, system_messages) + [
            {"role": "assistant", "content": first[(out_path, question["question_id"])]},
            {"role": "user", "content": question["turns"][1]}]
        requests.append((generator.render(conversation), TEMPERATURE[question["category"]],
                         question_seed(seed, question["question_id"], 2)))
    second = generator.generate_requests(requests,
                                         names=[f"question {q['question_id']}, turn 2" for _, q, _ in pending])
    for (_, question, out_path), answer, record in zip(pending, second, last_records(generator, len(pending))):
        row = _answer_row(question, model_id, first[(out_path, question["question_id"])], answer)
        row["long_prompts"] = turn_records(long_first.get((out_path, question["question_id"])), record)
        append_jsonl(out_path.with_name(out_path.name + ".partial"), row)
        done[out_path][row["question_id"]] = row

    results = {}
    for lang, questions, out_path in tasks:
        results[lang] = [done[out_path][q["question_id"]] for q in questions]
        write_jsonl(out_path, results[lang])
        out_path.with_name(out_path.name + ".partial").unlink(missing_ok=True)
        out_path.with_name(out_path.name + ".turn1.partial").unlink(missing_ok=True)
    return results


def run_in_backend_python(settings: dict) -> None:
    """``generation.backend: vllm`` runs in the interpreter that has vLLM (``vllm_python``, default
    ``.venv-vllm/bin/python``): a job started elsewhere re-executes itself there with the same
    arguments. The interpreter is an execution setting (per base model), so it is read by the job."""
    if settings["backend"] != "vllm" or importlib.util.find_spec("vllm") is not None:
        return
    from mlit.settings import REPO_ROOT

    python = settings["vllm_python"] or str(REPO_ROOT / ".venv-vllm" / "bin" / "python")
    if os.environ.get("MLIT_GENERATE_REEXEC") or not Path(python).exists():
        raise SystemExit(f"generation.backend: vllm, but vLLM is not importable in {sys.executable} and "
                         f"{python} cannot take over (make setup-vllm, or set launch.generation.vllm_python)")
    print(f"generation.backend: vllm: re-executing in {python}", flush=True)
    os.environ["MLIT_GENERATE_REEXEC"] = "1"
    os.execv(python, [python, "-m", "mlit", *sys.argv[1:]])


def generate_all(model_dir: str, bench_dir: str, languages: list[str], out_dir: Path, model_id: str,
                 settings: dict) -> None:
    settings = generation_settings(settings)
    run_in_backend_python(settings)
    generator = make_generator(model_dir, settings)
    backend = settings["backend"]
    whole_turns = backend == "vllm" and settings["vllm_submission"] == "turn"
    print(f"backend {backend}, " + ("whole-turn submission" if whole_turns else f"batch size {generator.batch_size}")
          + (f", tensor parallel size {generator.engine_args['tensor_parallel_size']}" if backend == "vllm" else "")
          + (f", device map {generator.device_map}" if backend == "hf" and generator.device_map else "")
          + f", {len(os.sched_getaffinity(0))} usable CPU(s) (sched_getaffinity)", flush=True)
    seed = settings["seed"]
    system_message = settings["system_message"]
    tasks = [(lang, load_questions(bench_dir, lang, settings["questions_per_category"]), out_dir / f"{lang}.jsonl")
             for lang in languages]
    for lang, questions, out_path in tasks:  # resume only the partial answers of this model and these settings
        keep_matching_partials(out_path, answers_fingerprint(model_dir, settings, lang, questions, model_id))
    if whole_turns:
        started = time.time()
        results = answer_whole_turns(generator, tasks, model_id, seed, system_message=system_message)
        print(f"{', '.join(f'{lang}: {len(rows)}' for lang, rows in results.items())} questions answered in "
              f"{time.time() - started:.1f} s ({generator.engine_calls} engine calls)", flush=True)
        for _, _, out_path in tasks:
            finish_partials(out_path)
        return
    for lang, questions, out_path in tasks:
        started = time.time()
        rows = answer_questions(generator, questions, out_path, model_id, seed, lang=lang,
                                system_message=system_message)
        print(f"{lang}: {len(rows)} questions answered in {time.time() - started:.1f} s", flush=True)
        finish_partials(out_path)
