"""Supervised fine-tuning with TRL's SFTTrainer on chat-format data, loss on assistant turns only.

This is the worker: one process of a (possibly distributed, DeepSpeed ZeRO) run, started in-process
or by ``accelerate launch`` (see ``mlit.train.launch``). The output directory holds a loadable model
(consolidated safetensors, tokenizer, chat template), the loss curve (``loss.csv``) and provenance
(``train_info.json``). Everything is written to ``<out>.tmp`` and renamed when complete, so a killed
job never leaves something that looks finished; checkpoints in ``<out>.tmp/checkpoints`` let a
killed or preempted run resume where it stopped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from transformers import TrainerCallback

from mlit.model.base import BASE_INFO, read_base_info
from mlit.train.batching import gradient_accumulation_steps
from mlit.model.chat_format import with_system_message
from mlit.train.checkpoints import (RUN_FILE, last_complete_checkpoint, prepare_staging, run_fingerprint,
                                   set_aside_damaged_checkpoints, staging_dir)
from mlit.files import sha256_file
from mlit.model.publish import publish_model
from mlit.train.truncation import truncation_report
from mlit.safe_paths import checked


class NoTrainableTokensError(RuntimeError):
    """Assistant-only loss would train on nothing: an example or a batch has no assistant token."""


def untrainable_rows(dataset, tokenizer, max_length: int) -> list[int]:
    """Rows whose first ``max_length`` tokens hold no assistant token (nothing to learn from)."""
    bad = []
    for index, messages in enumerate(dataset["messages"]):
        encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True)
        if 1 not in encoded["assistant_masks"][:max_length]:
            bad.append(index)
    return bad


def check_trainable(raw_dataset, prepared_dataset, tokenizer, data_path: str, max_length: int, packing: bool) -> int:
    """Stop if masking left an example, or the whole set, without a trainable token.

    TRL silently drops examples that truncation left fully masked; here that is an error naming the
    rows. Returns the number of trainable tokens per epoch."""
    if not packing and len(prepared_dataset) != len(raw_dataset):
        bad = untrainable_rows(raw_dataset, tokenizer, max_length)
        raise NoTrainableTokensError(
            f"{data_path}: {len(raw_dataset) - len(prepared_dataset)} row(s) have no assistant token left to train "
            f"on within max_length={max_length} (rows {bad[:10]}{' ...' if len(bad) > 10 else ''}); the assistant "
            "turn was cut off. Raise training.max_length or drop over-long rows."
        )
    total = sum(sum(1 for label in labels if label != -100) for labels in prepared_dataset["labels"])
    if total == 0:
        raise NoTrainableTokensError(
            f"{data_path}: no trainable (assistant) token in the whole dataset after masking; the chat template "
            "must mark assistant turns with {% generation %} ... {% endgeneration %}"
        )
    return total


class GuardedCollator:
    """Wraps a collator: a batch whose labels are all -100 is an error, never a silent zero loss."""

    def __init__(self, collator):
        self.collator = collator
        self.batches = 0

    def __call__(self, examples):
        batch = self.collator(examples)
        self.batches += 1
        if int((batch["labels"] != -100).sum()) == 0:
            raise NoTrainableTokensError(
                f"batch {self.batches} has no trainable (assistant) token; check the data and the chat template"
            )
        return batch


def row_languages(dataset) -> list[str | None]:
    """Each training row's ``lang`` (None where the data has no such field)."""
    return dataset["lang"] if "lang" in dataset.column_names else [None] * len(dataset)


def with_system_messages(dataset, policy: str, system_messages: dict[str, str]):
    """Training conversations with the system message of ``training.system_message`` (own_language:
    the row's ``lang``; english; none), where the chat format has system messages."""
    if policy == "none" or not system_messages:
        return dataset
    langs = row_languages(dataset)
    if policy == "own_language" and any(lang is None and not (m and m[0]["role"] == "system")
                                        for m, lang in zip(dataset["messages"], langs)):
        raise ValueError("training.system_message: own_language needs a 'lang' field in every training row "
                         "that has no system message of its own")
    messages = [with_system_message(m, lang, policy, system_messages) for m, lang in zip(dataset["messages"], langs)]
    # map, not remove + add: a dataset whose only column is ``messages`` would have no rows in between
    return dataset.map(lambda _, index: {"messages": messages[index]}, with_indices=True)


def log_rendered_examples(dataset, tokenizer) -> None:
    """The first training conversation of each language as the model sees it (chat template applied)."""
    first = {}
    for index, lang in enumerate(row_languages(dataset)):
        first.setdefault(lang, index)
    for lang, index in first.items():
        rendered = tokenizer.apply_chat_template(dataset[index]["messages"], tokenize=False)
        print(f"rendered training example ({lang or 'no language field'}):\n{rendered}", flush=True)


def package_versions() -> dict[str, str]:
    names = ["torch", "transformers", "trl", "accelerate", "datasets", "deepspeed", "mlit"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def loss_csv(log_history: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["step", "epoch", "loss", "learning_rate", "grad_norm"])
    for entry in log_history:
        if "loss" in entry:
            writer.writerow([entry.get("step"), entry.get("epoch"), entry["loss"], entry.get("learning_rate"),
                             entry.get("grad_norm")])
    return buffer.getvalue()


class TrainingPreempted(SystemExit):
    """SIGTERM (Slurm preemption or time limit) arrived: a checkpoint was saved, the job exits 143."""


class EmptyWeightsError(RuntimeError):
    """The saved model has missing or empty tensors (e.g. ZeRO-3 saved its placeholders)."""


def training_settings(settings: dict) -> dict:
    """``settings`` with the schema's defaults of the ``training`` section filled in (the workflow's jobs
    get them filled already; a test, a bench or a command run by hand may not): the one place defaults
    live is workflow/schemas/config.schema.yaml."""
    from mlit.settings import section_defaults

    return section_defaults("training", settings)


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (one all-reduce; the flag itself outside a
    process group). A ZeRO save is collective: all ranks must decide to save at the same step."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    from accelerate import PartialState

    tensor = torch.tensor([1.0 if flag else 0.0], device=PartialState().device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


class PreemptionCallback(TrainerCallback):
    """On SIGTERM, save a checkpoint at the end of the current optimizer step and stop.

    Every rank may receive the signal at a slightly different moment; the ranks agree on it with one
    all-reduce per step, so that all of them save the same step (a ZeRO save is collective). The
    signal comes early enough only if Slurm sends it ahead of the time limit
    (``launch.training.preempt_signal_minutes``) and the launcher waits for the save
    (``launch.training.checkpoint_grace_s``); see mlit.train.launch."""

    def __init__(self):
        super().__init__()
        self.requested = False
        self.stopped_at: int | None = None
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame):
        self.requested = True

    def restore(self):
        signal.signal(signal.SIGTERM, self._previous)

    def on_step_end(self, args, state, control, **kwargs):
        if any_rank(self.requested):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control


class ConsoleProgressCallback(TrainerCallback):
    """Training steps and the last loss on the console (mlit.progress), on the main process."""

    def __init__(self, label: str):
        self.label, self.progress, self.loss = label, None, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            from mlit.progress import Progress

            self.progress = Progress(self.label, state.max_steps, "optimizer steps")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = logs["loss"]

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(state.global_step, "" if self.loss is None else f"loss {self.loss:.3f}")


class TimedCheckpointCallback(TrainerCallback):
    """Save when ``max_lost_minutes`` have passed since the last save (or the start), in addition to
    ``save_steps``: a hard kill (node failure, SIGKILL) loses at most that much work, whatever a step
    costs. The ranks save together once any rank's clock says so (one all-reduce per step)."""

    def __init__(self, max_lost_minutes: float, clock=time.monotonic):
        super().__init__()
        self.interval_s = max_lost_minutes * 60
        self.clock = clock
        self.last_save = clock()
        self.timed_saves = 0

    def on_step_end(self, args, state, control, **kwargs):
        due = self.clock() - self.last_save >= self.interval_s
        if any_rank(due) and not control.should_save:
            control.should_save = True
            self.timed_saves += 1
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last_save = self.clock()
        return control


def checkpointing_argument(config_class, enabled: bool) -> dict:
    """Activation checkpointing under the name ``config_class`` takes: ``activation_checkpointing``
    (transformers >= 5.20; ``gradient_checkpointing`` is its deprecated alias there) or, before it,
    ``gradient_checkpointing`` (transformers 5.17, as on the GPU machine, rejects the new name)."""
    import dataclasses

    names = {field.name for field in dataclasses.fields(config_class)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


def sft_config(settings: dict, output_dir: Path, seed: int, world_size: int = 1):
    import torch
    from trl import SFTConfig

    settings = training_settings(settings)
    cuda = torch.cuda.is_available()
    bf16 = settings["bf16"]
    if bf16 is None:
        bf16 = cuda and torch.cuda.is_bf16_supported()
    return SFTConfig(
        **checkpointing_argument(SFTConfig, settings["activation_checkpointing"]),
        output_dir=str(output_dir),
        num_train_epochs=settings["num_train_epochs"],
        max_steps=settings["max_steps"],
        learning_rate=settings["learning_rate"],
        lr_scheduler_type=settings["lr_scheduler_type"],
        warmup_steps=settings["warmup_steps"],
        weight_decay=settings["weight_decay"],
        per_device_train_batch_size=settings["per_device_train_batch_size"],
        gradient_accumulation_steps=gradient_accumulation_steps(settings, world_size),
        max_length=settings["max_length"],
        packing=settings["packing"],
        padding_free=settings["padding_free"],
        train_sampling_strategy="group_by_length" if settings["group_by_length"] else "random",
        assistant_only_loss=True,
        use_liger_kernel=settings["use_liger_kernel"],
        bf16=bf16,
        use_cpu=not cuda,
        logging_steps=settings["logging_steps"],
        save_strategy="steps",
        save_steps=settings["save_steps"],
        save_total_limit=settings["save_total_limit"],
        include_num_input_tokens_seen="non_padding",
        # ranks that wait in a collective while others write a large checkpoint must not time out first
        ddp_timeout=max(1800, int(settings["checkpoint_grace_s"]) + 600),
        report_to=settings["report_to"],  # launch.training.report_to: where logs go, never part of the model
        seed=seed,
        data_seed=seed,
    )


def training_dtypes(base_model: str, settings: dict, trust_remote_code: bool = False):
    """(dtype the weights are loaded and trained in, dtype they are saved in or None: as trained).

    With DeepSpeed the checkpoint's dtype ("auto"): DeepSpeed keeps fp32 master weights and optimizer
    states itself. Without it nothing does: a bf16 checkpoint loaded as bf16 would train in pure bf16,
    where an update below half a bf16 step (lr 2e-5 on a weight of 0.02) is rounded away. So the weights
    are loaded in fp32 (bf16 autocast on a GPU, ``bf16``), and the trained model is saved in the
    checkpoint's dtype, as DeepSpeed's 16-bit gather saves it."""
    import torch
    from transformers import AutoConfig

    if training_settings(settings)["deepspeed"]:
        return "auto", None
    config = AutoConfig.from_pretrained(base_model, trust_remote_code=trust_remote_code)
    stored = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(stored, str):
        stored = getattr(torch, stored, None)
    return torch.float32, (stored if stored not in (None, torch.float32) else None)


PARALLEL_TOKENIZATION_ROWS = 5000


def tokenizer_processes(rows: int) -> int | None:
    """Processes that tokenize a training set of ``rows`` conversations: the CPUs this process may use (its
    Slurm step's, all of the node's: mlit.train.launch), at most 32; None (one, in this process) for a set
    below PARALLEL_TOKENIZATION_ROWS, where starting processes costs more than it saves."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cpus, 32) if cpus > 1 and rows >= PARALLEL_TOKENIZATION_ROWS else None


def weight_shapes(model_dir: Path) -> dict[str, tuple[int, ...]] | None:
    """Tensor names and shapes of the safetensors in ``model_dir`` (None if it has none)."""
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    shapes = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                shapes[name] = tuple(handle.get_slice(name).get_shape())
    return shapes


def verify_saved_weights(saved_dir: Path, base_model: str) -> int:
    """Fail loudly if the saved weights are missing or empty (ZeRO-3 without a 16-bit gather saves
    zero-size placeholders), or differ in names/shapes from a local base model. Returns #params."""
    saved = weight_shapes(saved_dir)
    if not saved:
        raise EmptyWeightsError(f"{saved_dir}: no safetensors weights were saved")
    empty = [name for name, shape in saved.items() if 0 in shape]
    if empty:
        raise EmptyWeightsError(
            f"{saved_dir}: {len(empty)} saved tensor(s) are empty ({empty[:3]} ...); with ZeRO-3 set "
            "stage3_gather_16bit_weights_on_model_save: true in the DeepSpeed config")
    base = weight_shapes(Path(base_model)) if Path(base_model).is_dir() else None
    if base is not None:
        differ = [name for name in base if saved.get(name) != base[name]]
        if differ:
            raise EmptyWeightsError(
                f"{saved_dir}: {len(differ)} tensor(s) differ in shape from the base model {base_model} "
                f"(e.g. {differ[0]}: saved {saved.get(differ[0])}, base {base[differ[0]]})")
    total = 0
    for shape in saved.values():
        count = 1
        for dim in shape:
            count *= dim
        total += count
    return total


@dataclass
class PreparedRun:
    """Everything ``fit`` and ``finalize`` need: the trainer and the provenance gathered on the way."""

    base_model: str
    data_path: str
    out_dir: Path
    settings: dict
    seed: int
    started: float
    world_size: int
    tmp: Path
    data_sha256: str
    fingerprint: str
    state: Any
    args: Any
    tokenizer: Any
    trainer: Any
    examples: int
    trainable_tokens: int
    truncation: dict | None
    router_logits: bool | None
    resume: Path | None
    saved_dtype: Any = None


def prepare(base_model: str, data_path: str, out_dir: Path, settings: dict, seed: int = 0) -> PreparedRun:
    """Staging directory (kept when it holds this run's checkpoints), data with system messages,
    tokenizer, model and trainer; checks that the data has tokens to train on."""
    import datasets
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    started = time.time()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    tmp = staging_dir(checked(out_dir))
    data_sha256 = sha256_file(data_path)
    fingerprint = run_fingerprint(base_model, data_sha256, settings, seed, world_size)
    args = sft_config(settings, tmp / "checkpoints", seed, world_size)  # sets up the process group
    state = PartialState()
    staging = prepare_staging(tmp, fingerprint) if state.is_main_process else None
    if state.is_main_process:  # a damaged newest checkpoint: resume the one before it, naming it
        set_aside_damaged_checkpoints(tmp / "checkpoints")
    state.wait_for_everyone()

    base_info = read_base_info(base_model)
    trust = bool(base_info.get("trust_remote_code"))
    dataset = with_system_messages(datasets.load_dataset("json", data_files=data_path, split="train"),
                                   settings["system_message"],
                                   base_info["chat_format"].get("system_messages") or {})
    tokenizer = AutoTokenizer.from_pretrained(base_model, trust_remote_code=trust)
    # TRL tokenizes on the main process first (the others read its cache), and so does the truncation
    # report: on every CPU of the node, so the GPUs do not wait half an hour for one core
    args.dataset_num_proc = tokenizer_processes(len(dataset))
    truncation = None
    if state.is_main_process:
        truncation = truncation_report(dataset.to_list(), tokenizer, args.max_length,
                                       num_proc=args.dataset_num_proc or 1)
        log_rendered_examples(dataset, tokenizer)
    dataset = dataset.select_columns(["messages"])
    weights_dtype, saved_dtype = training_dtypes(base_model, settings, trust)
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=weights_dtype, trust_remote_code=trust,
                                                 attn_implementation=settings["attn_implementation"])
    router_logits = getattr(model.config, "output_router_logits", None)  # TRL turns it on for MoE training
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainable_tokens = check_trainable(dataset, trainer.train_dataset, tokenizer, data_path, args.max_length,
                                       args.packing)
    trainer.data_collator = GuardedCollator(trainer.data_collator)
    resume = last_complete_checkpoint(tmp / "checkpoints")
    if state.is_main_process:
        print(f"staging {tmp}: {staging}; world size {world_size}, gradient accumulation "
              f"{args.gradient_accumulation_steps}, resuming from {resume.name if resume else 'scratch'}", flush=True)
    return PreparedRun(base_model=base_model, data_path=data_path, out_dir=out_dir, settings=settings, seed=seed,
                       started=started, world_size=world_size, tmp=tmp, data_sha256=data_sha256,
                       fingerprint=fingerprint, state=state, args=args, tokenizer=tokenizer, trainer=trainer,
                       examples=len(dataset), trainable_tokens=trainable_tokens, truncation=truncation,
                       router_logits=router_logits, resume=resume, saved_dtype=saved_dtype)


def fit(run: PreparedRun):
    """Train (from the last checkpoint, if any), saving every ``save_steps``, every
    ``max_lost_minutes`` and on SIGTERM; a SIGTERM ends in TrainingPreempted after its checkpoint."""
    trainer, state = run.trainer, run.state
    preemption = PreemptionCallback()
    trainer.add_callback(preemption)
    trainer.add_callback(ConsoleProgressCallback(f"train {run.out_dir.name}"))
    if run.settings["max_lost_minutes"]:
        trainer.add_callback(TimedCheckpointCallback(float(run.settings["max_lost_minutes"])))
    try:
        result = trainer.train(resume_from_checkpoint=str(run.resume) if run.resume else None)
    finally:
        preemption.restore()
    if preemption.stopped_at is not None:
        state.wait_for_everyone()  # every rank has written its part of the checkpoint
        if state.is_main_process:
            print(f"SIGTERM: saved checkpoint-{preemption.stopped_at} in {run.tmp / 'checkpoints'}; rerun to resume",
                  flush=True)
        raise TrainingPreempted(143)
    return result


def finalize(run: PreparedRun, result) -> dict | None:
    """Save the consolidated weights (every rank), then on the main process verify them and publish
    the model with tokenizer, loss curve and provenance (mlit.model.publish). Returns the provenance
    on the main process, None on the others."""
    trainer, state = run.trainer, run.state
    if run.router_logits is not None:  # saved as the base model had it: generation does not compute the aux loss
        trainer.model.config.output_router_logits = run.router_logits
    if run.saved_dtype is not None:  # fp32 master weights (no DeepSpeed): saved in the checkpoint's own dtype
        trainer.model.to(run.saved_dtype)
    trainer.save_model(str(run.tmp))  # every rank: ZeRO-3 gathers the 16-bit weights collectively
    state.wait_for_everyone()
    info = publish(run, result) if state.is_main_process else None
    state.wait_for_everyone()  # the ranks leave together, once the model is published
    return info


def publish(run: PreparedRun, result) -> dict:
    """Main process: verify the saved weights, then publish the model with its tokenizer, loss curve
    and provenance."""
    trainer = run.trainer
    parameters = verify_saved_weights(run.tmp, run.base_model)
    info = provenance(run, result, parameters)
    base_info = Path(run.base_model) / BASE_INFO  # chat format and trust_remote_code travel with the model
    publish_model(run.tmp, run.out_dir, tokenizer=run.tokenizer, copy=[base_info] if base_info.exists() else [],
                  metadata={"loss.csv": loss_csv(trainer.state.log_history), "train_info.json": info},
                  drop=["checkpoints", RUN_FILE])
    print(json.dumps({k: info[k] for k in ("examples", "world_size", "global_steps", "last_logged_loss",
                                           "tokens_seen", "wall_time_s")}), flush=True)
    return info


def provenance(run: PreparedRun, result, parameters: int) -> dict:
    """``train_info.json``: what was trained on what, how, and with which packages."""
    trainer, args = run.trainer, run.args
    manifest = Path(run.data_path).with_name("manifest.json")
    return {
        "base_model": run.base_model,
        "data": run.data_path,
        "data_sha256": run.data_sha256,
        "data_manifest_sha256": sha256_file(manifest) if manifest.exists() else None,
        "settings": run.settings,
        "seed": run.seed,
        "world_size": run.world_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "effective_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * run.world_size,
        "deepspeed": os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE"),
        "run_fingerprint": run.fingerprint,
        "resumed_from_step": int(run.resume.name.split("-")[1]) if run.resume else None,
        "examples": run.examples,
        "trainable_tokens_per_epoch": run.trainable_tokens,
        "system_message": run.settings["system_message"],
        "truncation": run.truncation,
        "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "parameters": parameters,
        "global_steps": trainer.state.global_step,
        # HF's training_loss is the mean over the steps of this process's session (after a resume:
        # since the resume); the last logged loss is the end of the curve in loss.csv
        "train_loss_mean_this_session": result.training_loss,
        "last_logged_loss": next((e["loss"] for e in reversed(trainer.state.log_history) if "loss" in e), None),
        "wall_time_s": round(time.time() - run.started, 1),
        # the training loop alone (this session): wall_time_s less loading, tokenization and saving; with
        # tokens_seen, the measured throughput of `snakemake plan`
        "train_runtime_s": round(float(result.metrics.get("train_runtime", 0.0)), 2),
        "packages": package_versions(),
    }


def train(base_model: str, data_path: str, out_dir: Path, settings: dict, seed: int = 0) -> dict | None:
    """Fine-tune ``base_model`` (hub id or directory) on ``data_path`` (JSONL of ``messages``):
    prepare, fit, finalize.

    Run in every process of a distributed run; returns the provenance on the main process and None
    on the others. Resumes from the last complete checkpoint of the same run."""
    run = prepare(base_model, data_path, out_dir, training_settings(settings), seed)
    return finalize(run, fit(run))


def exit_without_teardown(code: int) -> NoReturn:
    """End a finished worker: flush its output and exit at once, skipping interpreter teardown.

    In CI a rank of a finished 2-process ZeRO-3 run was twice aborted at exit ("terminate called
    without an active exception", SIGABRT) after the model was saved, and the launcher then failed
    the run. The native objects of torch.distributed and DeepSpeed need not be destroyed in an order
    that suits their threads; a worker has nothing left to do once the model is published (or its
    SIGTERM checkpoint saved, after a barrier), so it does not run their destructors."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
