"""The grid: checks a validated config for what a schema cannot say (reading the data files and local
checkpoints), has it expanded into cells, and answers the rules' lookups (one method per derived value).

``Grid(config)`` first validates the config against ``workflow/schemas/config.schema.yaml`` and fills in
the schema's defaults (``mlit.settings.with_defaults``: the one place defaults live, no code has
fallbacks of its own); then it checks languages, compositions, sizes against the data, and
cross-references, and raises ``ConfigError`` naming the key, the value and what is allowed. Nothing runs
before that. Below it: ``mlit.settings`` (the schema), and pure, with no I/O: ``mlit.cells`` (the cell
ids), ``mlit.grid_expansion`` (the cells of a config, given its datasets' items, which are read here),
``mlit.cluster_requests`` (what each job asks the cluster for, which the rules read directly); above it
only the workflow and the command line (tests/test_imports.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mlit.cells import (  # noqa: F401  (Cell, DataCell, EVALUATED_DATASET, AS_IS: the grid's, re-exported)
    AS_IS,
    EVALUATED_DATASET,
    Cell,
    DataCell,
    cell_fields,
    composed_config_name,
)
from mlit.cluster_requests import check_resources, job_gpus, training_launch
from mlit.config_checks import ConfigValueError, regular_file
from mlit.grid_expansion import (
    check_available,
    compositions,
    dataset_sizes,
    eval_languages,
    expand,
    training_languages,
)
from mlit.langs import LANGUAGES
from mlit.settings import (  # noqa: F401  (re-exported: the workflow and the tests read them here)
    REPO_ROOT,
    SAFE_NAME,
    SCHEMA,
    ConfigError,
    _check_values,
    _schema,
    check_name,
    deepspeed_path,
    experiment_part,
    format_lang,
    unknown_keys_message,
    resolve_path,
    section_defaults,
    with_defaults,
)

# A hub id as written under base_models[].path by mistake: "org/name", no leading "." or "/", one slash
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def check_distinct_files(key: str, paths: dict[str, Path]) -> None:
    """The files of a dataset's languages (``{lang}`` filled in) must be different files: a template without
    ``{lang}``, or two names of one file (a link), would train every language on the same text."""
    seen: dict[tuple, str] = {}
    for lang, path in paths.items():
        try:
            info = path.stat()
            identity = (info.st_dev, info.st_ino)
        except OSError:
            identity = (str(path.resolve()),)
        if identity in seen:
            raise ConfigError(f"{key}: languages {seen[identity]} and {lang} resolve to the same file {path}; "
                              "put {lang} (or {lang_lower}) in the path, one file per language")
        seen[identity] = lang


def count_local_items(spec: dict, languages: tuple[str, ...], repo_root: Path = REPO_ROOT, name: str = "") -> int:
    """Items present in every language of a local dataset (the parallel core)."""
    ids: set[str] | None = None
    paths = {lang: resolve_path(format_lang(spec["local"], lang), repo_root) for lang in languages}
    for lang in languages:
        path = paths[lang]
        if not path.exists():
            raise ConfigError(
                f"datasets: local file for language {lang} not found: {path} "
                f"(from template '{spec['local']}'); create it or remove {lang} from the compositions"
            )
        try:
            regular_file(path, f"datasets: local file for language {lang} (template '{spec['local']}')")
        except ConfigValueError as error:
            raise ConfigError(str(error)) from None
    check_distinct_files(f"datasets.{name}.local" if name else "datasets.local", paths)
    for lang in languages:
        path = paths[lang]
        id_field = spec.get("id_field")
        lang_ids = set()
        index = 0
        where = f"datasets: local file for language {lang} (template '{spec['local']}'): {path}"
        with path.open("rb") as handle:  # bytes: a bad byte is reported with its line
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as error:
                    raise ConfigError(
                        f"{where}:{number}: byte 0x{raw[error.start]:02x} at column {error.start + 1} is not UTF-8; "
                        "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ConfigError(f"{where}:{number}: not valid JSON ({error.msg.removesuffix(' at')} at column "
                                      f"{error.colno}); fix or remove that line (one JSON object per line)") from None
                if id_field and not (isinstance(row, dict) and id_field in row):
                    raise ConfigError(f"{where}:{number}: no field '{id_field}' (the dataset's id_field); add it to "
                                      "every line, or change id_field")
                lang_ids.add(str(row[id_field]) if id_field else str(index))
                index += 1
        ids = lang_ids if ids is None else ids & lang_ids
    return len(ids or ())


# Names a further judge cannot have: what they already name in results/tables/
RESERVED_JUDGE_NAMES = {"main": "the main judge's, in results/tables/<judge>/agreement_with_main.md",
                        "plots": "results/tables/plots/ holds the main judge's plots"}


class Grid:
    def __init__(self, config: dict, repo_root: Path = REPO_ROOT, dry_run: bool = False):
        """``config`` as read: validated and filled with the schema's defaults here, in place (the rules
        read the filled ``config``)."""
        _check_values(config)
        self.config = with_defaults(config)
        self.repo_root = repo_root
        self.dry_run = dry_run
        self.warnings: list[str] = []
        # the checks that need no file come before those that read one (a base model, a dataset's files)
        self.compositions = compositions(config)
        self.eval_languages = eval_languages(config)
        self.base_models = {}
        for index, model in enumerate(config["base_models"]):
            if model["name"] in self.base_models:
                raise ConfigError(f"base_models[{index}].name: '{model['name']}' is used twice; names must be unique")
            check_name(f"base_models[{index}].name", model["name"])
            self.base_models[model["name"]] = model
            self._check_base_model(model)
        self.datasets = config["datasets"]
        needed = training_languages(self.compositions)
        self.dataset_items: dict[str, int | None] = {}
        for name, spec in self.datasets.items():
            check_name(f"datasets.{name}", name)
            dataset_sizes(config, name)  # before its files are read
            self.dataset_items[name] = self._available_items(name, spec, needed)
            check_available(config, name, self.dataset_items[name], needed)  # before the next dataset's files
        expansion = expand(config, self.dataset_items)
        self.data_cells: dict[str, DataCell] = expansion.data_cells
        self.cells = expansion.cells  # trained cells
        # base_models[].evaluate_only: an already tuned model, answered and judged as it is (no training job)
        self.evaluated_cells = expansion.evaluated_cells
        self._check_judge(config["judge"])
        self._check_extra_judges()
        for name in self.base_models:
            self._check_training(f"base_models[{name}].training", self.training_settings(name))
        if self.judge_served():
            self._check_training("judge.serve.training", self.judge_training_settings())
        check_resources(self.config)

    def chat_template_setting(self, name: str) -> tuple[str, str]:
        """The ``chat_template`` of a base model and the config key it comes from."""
        from mlit.model.chat_format import BY_MODEL_ID, ChatFormatError, template_for_model_id

        model = self.base_models[name]
        setting, key = ((model["chat_template"], f"base_models[{name}].chat_template") if "chat_template" in model
                        else (self.config["chat_template"], "chat_template"))
        if setting == BY_MODEL_ID:  # MT-Bench-X's rule: the template of the model's id (hub id, else name)
            overall = self.config["chat_template"]
            try:
                setting = template_for_model_id(model.get("hub") or name, key, overall if overall.startswith(
                    "opengptx_") else "opengptx_2024_09")
            except ChatFormatError as error:
                raise ConfigError(str(error)) from None
        return setting, key

    def _check_base_model(self, model: dict) -> None:
        """The chat template setting, and a local checkpoint: a model directory, loadable with its
        ``trust_remote_code``, with a usable template. Hub checkpoints are checked when fetched (a local
        job, before any training job). In a dry run a missing directory is a warning (the plan of a grid
        whose checkpoint is not here yet)."""
        from mlit.model.base import BaseModelError, check_local_model
        from mlit.model.chat_format import ChatFormatError, resolve_template_setting

        name = model["name"]
        setting, template_key = self.chat_template_setting(name)
        try:
            template_file = self.chat_template_file(name)
            if template_file is not None and not template_file.is_file():
                template_file = None  # a typo of a preset: the message names the value as written
            resolve_template_setting(str(template_file) if template_file else setting, template_key)
        except ChatFormatError as error:
            raise ConfigError(str(error)) from None
        if "path" not in model:
            return
        path = self.resolve(model["path"])
        hub_hint = ""
        if not path.exists() and HUB_ID.fullmatch(model["path"]):
            hub_hint = (f"; if '{model['path']}' is a hub id, it goes under hub: (base_models[{name}].hub: "
                        f"{model['path']}, optionally with revision:), not path: (a local model directory)")
        if self.dry_run and not path.exists():
            self.warnings.append(f"base_models[{name}].path: '{path}' does not exist; set it before a real run{hub_hint}")
            return
        if hub_hint:
            raise ConfigError(f"base_models[{name}].path: '{path}' does not exist{hub_hint}")
        try:
            check_local_model(path, f"base_models[{name}]", model["trust_remote_code"],
                              str(template_file) if template_file else setting, template_key)
        except BaseModelError as error:
            raise ConfigError(str(error)) from None

    def resolve(self, path: str) -> Path:
        return resolve_path(path, self.repo_root)

    def chat_template_file(self, name: str) -> Path | None:
        """The file of a base model's ``chat_template`` when it names one (any name, not only *.jinja):
        everything but a preset and ``model``."""
        from mlit.model.chat_format import KEEP_MODEL_TEMPLATE, PRESETS

        setting, _ = self.chat_template_setting(name)
        return None if setting in PRESETS or setting == KEEP_MODEL_TEMPLATE else self.resolve(setting)

    def check_prepared_sources(self, results: str = "results") -> None:
        """A local checkpoint (``base_models[].path``) must hold what it held when it was prepared (the
        fingerprint in its prepared ``mlit_base.json``): changed in place, new cells would train on other
        weights than the finished ones. Raises ConfigError naming the key, the changed files and the fix."""
        from mlit.model.base import BASE_INFO
        from mlit.model.fingerprint import changed_files, checkpoint_fingerprint

        for name, model in self.base_models.items():
            info_file = Path(self.model_path(name, results)) / BASE_INFO
            source = self.resolve(model["path"]) if "path" in model else None
            if source is None or not info_file.is_file() or not source.is_dir():
                continue
            info = json.loads(info_file.read_text(encoding="utf-8"))
            if info.get("source") != str(source) or "source_fingerprint" not in info:
                continue  # prepared from elsewhere (the params differ: it is prepared again), or before fingerprints
            changed = changed_files(info["source_fingerprint"], checkpoint_fingerprint(source))
            if changed:
                raise ConfigError(
                    f"base_models[{name}].path: the checkpoint {source} changed after it was prepared "
                    f"({', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''} differ from "
                    f"{info_file}); its finished cells used the old files. Restore it, or delete "
                    f"{self.model_path(name, results)} to prepare it again and rerun every cell of {name}")

    def _check_training(self, key: str, settings: dict) -> None:
        """DeepSpeed preset exists; the effective batch splits over the processes a job will have
        (processes_per_node, else gpus_per_node, per node)."""
        from mlit.train.batching import BatchSizeError, gradient_accumulation_steps

        deepspeed_path(settings["deepspeed"], self.repo_root)
        if isinstance(settings["warmup_steps"], float) and settings["warmup_steps"] >= 1:
            raise ConfigError(
                f"{key}.warmup_steps: {settings['warmup_steps']} is read by transformers as "
                f"{int(settings['warmup_steps'])} step(s), not as a fraction of the run; write a whole number of "
                "steps (1, 100) or a fraction below 1 (0.03)")
        if settings["packing"]:
            raise ConfigError(
                f"{key}.packing: packing puts several examples into one row, so an optimizer step would hold "
                f"effective_batch_size={settings['effective_batch_size']} packed rows, not examples, and a small "
                "training set would get only a handful of steps; set packing: false (the study's FastChat recipe "
                "does not pack)")
        if settings["padding_free"] and not settings["packing"]:
            raise ConfigError(
                f"{key}.padding_free: true without packing; TRL cannot truncate unpacked padding-free rows to "
                "max_length. Set padding_free: false, or packing: true (packed rows are padding-free already)")
        if settings["attn_implementation"] == "flash_attention_2" and settings["bf16"] is False:
            raise ConfigError(f"launch.training.attn_implementation: flash_attention_2 needs bf16 (or fp16) weights on a "
                              f"GPU; {key}.bf16 is false. Use sdpa, or set bf16: null")
        per_node = settings["processes_per_node"] or settings["gpus_per_node"] or 1
        try:
            gradient_accumulation_steps(settings, int(per_node) * settings["nodes"])
        except BatchSizeError as error:
            raise ConfigError(f"{key}: {error}") from None

    def _available_items(self, name: str, spec: dict, languages: tuple[str, ...]) -> int | None:
        if spec.get("composed_configs"):
            if "local" in spec and len(self.compositions) > 1:
                names = {composed_config_name(c) for c in self.compositions.values()}
                check_distinct_files(f"datasets.{name}.local", {
                    n: resolve_path(format_lang(spec["local"], n), self.repo_root) for n in sorted(names)})
            return spec.get("num_examples")  # only 'full' is allowed; row counts are checked at data prep
        if "local" in spec:
            count = count_local_items(spec, languages, self.repo_root, name)
            if "num_examples" in spec and spec["num_examples"] != count:
                raise ConfigError(
                    f"datasets.{name}.num_examples: says {spec['num_examples']} but the local files have {count} "
                    "parallel items; remove the key or correct it"
                )
            return count
        return spec.get("num_examples")

    def _check_judge(self, judge: dict) -> None:
        from mlit.redact import check_judge_endpoint

        try:
            check_judge_endpoint(self.config["launch"]["judge"]["api_key_env"], judge["base_url"])
        except ValueError as refused:
            raise ConfigError(str(refused)) from None
        if self.judge_served():
            serve = judge["serve"]
            if serve["base_model"] not in self.base_models:
                raise ConfigError(
                    f"judge.serve.base_model: '{serve['base_model']}' is not a base model; "
                    f"allowed: {sorted(self.base_models)}"
                )

    def _check_extra_judges(self) -> None:
        """judges.<name>: an endpoint without credentials in it, a key variable; base_url null only where
        the demo judge is served; launch.judges names only judges of the judges section."""
        from mlit.redact import check_judge_endpoint

        for name in self.config["launch"]["judges"]:
            if name not in self.extra_judges:
                raise ConfigError(f"launch.judges.{name}: no judge '{name}' in the judges section (it has "
                                  f"{sorted(self.extra_judges) or 'none'}); add judges.{name} or remove this entry")
        for name, judge in self.extra_judges.items():
            if name in RESERVED_JUDGE_NAMES:
                raise ConfigError(f"judges.{name}: '{name}' is taken ({RESERVED_JUDGE_NAMES[name]}); give this judge "
                                  "another name")
            try:
                check_judge_endpoint(self.extra_judge_launch(name)["api_key_env"], judge["base_url"])
            except ValueError as refused:
                raise ConfigError(f"judges.{name}: {refused}") from None
            if judge["base_url"] is None and not self.judge_served():
                raise ConfigError(f"judges.{name}.base_url: null serves the demo judge model (judge.serve), which "
                                  "this config does not train (judge.base_url is set); give judges."
                                  f"{name}.base_url an OpenAI-compatible endpoint")

    # --- lookups used by the rules -------------------------------------------------------------

    @property
    def answer_cells(self) -> dict[str, Cell]:
        """Every cell that is answered, judged and tabled: the trained cells, then the evaluated models."""
        return {**self.cells, **self.evaluated_cells}

    def cell_model(self, cell_id: str) -> str:
        return self.answer_cells[cell_id].base_model

    def cell_fields(self, cell_id: str) -> dict[str, Any]:
        """A cell's fields for the tables, with its examples per language ('full' resolved where the
        dataset's size is known), so that sizes compare across datasets. An evaluated model has none."""
        if cell_id in self.evaluated_cells:
            return {**self.evaluated_cells[cell_id].fields(), "examples_per_language": None}
        return cell_fields(cell_id, self.dataset_items[self.cells[cell_id].data.dataset])

    def data_spec(self, data_id: str) -> dict:
        """Everything the data-prep step needs for one training set (and nothing else, so that
        changing another cell does not rerun it)."""
        cell = self.data_cells[data_id]
        spec = dict(self.datasets[cell.dataset])
        spec.pop("sizes", None)
        if not spec.get("composed_configs"):
            spec.pop("composed_configs", None)  # the schema's default false: the spec of other cells stays as it was
        if "local" in spec:
            spec["local"] = str(resolve_path(spec["local"], self.repo_root))
        return {"dataset": cell.dataset, "source": spec, "composition": cell.composition,
                "size": cell.size, "seed": cell.seed}

    def data_inputs(self, data_id: str) -> list[str]:
        cell = self.data_cells[data_id]
        spec = self.datasets[cell.dataset]
        if "local" not in spec:
            return []
        composition = self.compositions[cell.composition]
        languages = (composed_config_name(composition),) if spec.get("composed_configs") else composition.languages
        return [str(resolve_path(format_lang(spec["local"], lang), self.repo_root)) for lang in languages]

    def builds_model(self, name: str) -> bool:
        return "build" in self.base_models[name]

    def fetches_model(self, name: str) -> bool:
        return "hub" in self.base_models[name]

    def model_path(self, name: str, results: str = "results") -> str:
        """The prepared base model every job reads (tokenizer, chat template, linked weights)."""
        return f"{results}/base_models/{name}"

    def model_source(self, name: str, results: str = "results") -> str:
        """Where the checkpoint is before preparation: built, fetched from the hub, or a local path."""
        model = self.base_models[name]
        if "build" in model:
            return f"{results}/built_models/{name}"
        if "hub" in model:
            return f"{results}/hub_models/{name}"
        return str(self.resolve(model["path"]))

    def base_model_spec(self, name: str, results: str = "results") -> dict:
        """What defines a prepared base model (the prepare step's params)."""
        from mlit.files import sha256_file

        model = self.base_models[name]
        setting, key = self.chat_template_setting(name)
        spec = {"name": name, "source": self.model_source(name, results), "chat_template": setting,
                "chat_template_key": key, "trust_remote_code": model["trust_remote_code"]}
        path = self.chat_template_file(name)
        if path is not None:  # its content, whatever its name: an edit prepares the model again
            spec["chat_template"] = str(path)
            spec["chat_template_sha256"] = sha256_file(path)
        if "hub" in model:
            spec.update(hub=model["hub"], revision=model.get("revision"))
        return spec

    def training_recipe(self, name: str) -> dict:
        """What defines a fine-tuned model of base model ``name`` (the train step's params, verbatim): the
        ``training`` recipe with ``base_models[].training`` merged over it."""
        return {**self.config["training"], **self.base_models[name]["training"]}

    def training_launch(self, name: str) -> dict:
        """How a training job of base model ``name`` runs: ``launch.training`` with
        ``base_models[].launch.training`` merged over it; a DeepSpeed path (not a preset) made absolute."""
        return self._absolute_deepspeed(training_launch(self.config, name))

    def _absolute_deepspeed(self, launch: dict) -> dict:
        value = launch["deepspeed"]
        if value and not (self.repo_root / "config" / "deepspeed" / f"{value}.json").exists():
            launch["deepspeed"] = str(resolve_path(value, self.repo_root))
        return launch

    def training_settings(self, name: str) -> dict:
        """A training job's whole settings (recipe and launch): what the job itself sees."""
        return {**self.training_recipe(name), **self.training_launch(name)}

    def processes_per_node(self, name: str) -> int:
        """Training processes per node of base model ``name``'s jobs as the grid plans them (the launcher
        counts visible GPUs where ``processes_per_node`` is null): processes_per_node, else
        gpus_per_node, else 1."""
        launch = self.training_launch(name)
        return int(launch["processes_per_node"] or launch["gpus_per_node"] or 1)

    def generation_settings(self, name: str) -> dict:
        """What defines the answers of base model ``name``'s cells (the generate step's params, verbatim):
        the ``generation`` section with ``base_models[].generation`` merged over it."""
        return {**self.config["generation"], **self.base_models[name]["generation"]}

    def generation_launch(self, name: str) -> dict:
        """How a generate job of base model ``name`` runs: ``launch.generation`` with
        ``base_models[].launch.generation`` merged over it, plus ``gpus``: the job's GPUs
        (``launch.resources.generate.gpus``), vLLM's tensor parallel size."""
        return {**self.config["launch"]["generation"], **self.base_models[name]["launch"]["generation"],
                "gpus": job_gpus(self.config, "generate", name)}

    def vllm_python(self, name: str) -> str | None:
        """The interpreter of base model ``name``'s vLLM generate jobs, or None with the hf backend."""
        if self.generation_settings(name)["backend"] != "vllm":
            return None
        return self.generation_launch(name)["vllm_python"] or str(self.repo_root / ".venv-vllm" / "bin" / "python")

    def judge_served(self) -> bool:
        """Whether the judge is the local demo judge (``judge.base_url: null``, with ``judge.serve``)."""
        return self.config["judge"]["base_url"] is None

    def judge_params(self) -> dict:
        """What defines a judgment (the judge step's params): the ``judge`` section, less the served
        judge's training recipe (the train_judge step's params; the judge step has that model as input)."""
        judge = dict(self.config["judge"])
        if "serve" in judge:
            judge["serve"] = {key: value for key, value in judge["serve"].items() if key != "training"}
        return judge

    def judge_settings(self) -> dict:
        """A judge job's whole settings (``judge`` and ``launch.judge``): what the job itself sees."""
        return {**self.config["judge"], **self.config["launch"]["judge"]}

    @property
    def extra_judges(self) -> dict[str, dict]:
        """The further judges (``judges``), by name, in the config's order, filled with the schema's defaults."""
        return self.config["judges"]

    def extra_judge_params(self, name: str) -> dict:
        """What defines a further judge's judgments, as the judge step's --judge takes it: its grading keys
        (its share and seed go to --share / --share-seed)."""
        return {key: value for key, value in self.extra_judges[name].items() if key not in ("share", "seed")}

    def extra_judge_share(self, name: str) -> tuple[float, int]:
        """(share, seed) of a further judge: which turns of each stratum it rates."""
        judge = self.extra_judges[name]
        return judge["share"], judge["seed"]

    def extra_judge_launch(self, name: str) -> dict:
        """How a further judge's jobs run: ``launch.judge`` with ``launch.judges.<name>`` over it."""
        return {**self.config["launch"]["judge"], **self.config["launch"]["judges"].get(name, {})}

    def judge_pairs(self) -> list[tuple[str, str]]:
        """(judge, other) for the agreement of every pair of judges: each further judge with the main judge
        ("main") and with each further judge listed before it."""
        names = list(self.extra_judges)
        return [(name, other) for index, name in enumerate(names) for other in ["main", *names[:index]]]

    def judge_training_recipe(self) -> dict:
        """The train_judge step's params: the judge base model's recipe with ``judge.serve.training`` over it."""
        serve = self.config["judge"]["serve"]
        return {**self.training_recipe(serve["base_model"]), **serve["training"]}

    def judge_training_launch(self) -> dict:
        """How the train_judge job runs: the judge base model's launch with ``launch.judge_training`` over it."""
        launch = {**self.training_launch(self.config["judge"]["serve"]["base_model"]),
                  **self.config["launch"]["judge_training"]}
        return self._absolute_deepspeed(launch)

    def judge_training_settings(self) -> dict:
        return {**self.judge_training_recipe(), **self.judge_training_launch()}

    def questions_per_category(self) -> int | str:
        """``generation.questions_per_category`` as the jobs' command lines take it: a number, or 'all'."""
        return self.config["generation"]["questions_per_category"] or "all"

    def tokenizer_corpus(self) -> list[str]:
        """Text the demo tokenizer is trained on: the local instruction data and the benchmark."""
        local = [resolve_path(format_lang(spec["local"], lang), self.repo_root)
                 for spec in self.datasets.values() if "local" in spec for lang in LANGUAGES]
        files = [str(path) for path in local if path.exists()]
        bench = self.benchmark_dir()
        for lang in LANGUAGES:
            files += [str(bench / lang / name) for name in
                      ("question.jsonl", "judge_prompts.jsonl", "reference_answer_gpt-4.jsonl")]
        return files

    def answer_pool(self) -> dict[str, str]:
        """Per evaluation language, a local instruction file whose outputs serve as sample answers
        for the demo judge's training data."""
        pool = {}
        for spec in self.datasets.values():
            if "local" in spec and spec["format"] == "bactrian":
                for lang in self.eval_languages:
                    path = resolve_path(format_lang(spec["local"], lang), self.repo_root)
                    if path.exists():
                        pool.setdefault(lang, str(path))
        return pool

    def execution_settings(self) -> dict:
        """The launch section, per job (mlit.run_settings): written to results/execution/<hash>.json, whose
        sections the jobs read: ``training/<model>``, ``generation/<cell>``, ``judge`` and, with the demo
        judge, ``judge_training``."""
        generation = {name: self.generation_launch(name) for name in self.base_models}
        settings = {"training": {name: self.training_launch(name) for name in self.base_models},
                    # per cell (the generate job's section, generation/<cell>): its base model's settings
                    "generation": {cell_id: generation[cell.base_model] for cell_id, cell in self.answer_cells.items()},
                    "judge": dict(self.config["launch"]["judge"])}
        if self.extra_judges:  # a further judge's section: judges/<name>
            settings["judges"] = {name: self.extra_judge_launch(name) for name in self.extra_judges}
        if self.judge_served():
            settings["judge_training"] = self.judge_training_launch()
        return settings

    def training_languages(self) -> list[str]:
        """Languages of any composition (a slow tokenizer's conversion is checked on each)."""
        return list(training_languages(self.compositions))

    def benchmark_dir(self) -> Path:
        return resolve_path(self.config["generation"]["benchmark_dir"], self.repo_root)

    def benchmark_files(self) -> list[str]:
        bench = self.benchmark_dir()
        return [str(bench / lang / name) for lang in self.eval_languages
                for name in ("question.jsonl", "judge_prompts.jsonl", "reference_answer_gpt-4.jsonl")]
