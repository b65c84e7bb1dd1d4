"""The grid: checks a validated config for what a schema cannot say, and expands it into cells.

The Snakefile validates the config against ``workflow/schemas/config.schema.yaml`` first; then
``Grid(config)`` checks languages, compositions, sizes against the data, and cross-references, and
raises ``ConfigError`` naming the key, the value and what is allowed. Nothing runs before that.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlit.langs import LANGUAGES, parse_composition

REPO_ROOT = Path(__file__).resolve().parents[2]


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and the fix."""


# Names that become paths, wildcards and parts of cell ids (datasets, base models): letters and digits,
# single '.', '-' or '_' between them. No '/', '..', spaces, quotes or shell characters, and no '_' (cell ids
# join their fields with '__').
SAFE_NAME = re.compile(r"^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$")


def check_name(key: str, name: str) -> None:
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ConfigError(f"{key}: {name!r} is not a safe name; use letters and digits with single '.', '-' or '_' "
                          "between them (e.g. 'bactrian-x', 'mixtral-8x7b')")


def resolve_path(path: str, repo_root: Path = REPO_ROOT) -> Path:
    """A config path: absolute as given; else relative to the working directory if it exists there,
    else relative to the repository root (so the shipped data works from any working directory)."""
    candidate = Path(path)
    if candidate.is_absolute():
        return candidate
    if candidate.exists() or ("{" in path and candidate.parent.is_dir()):
        return candidate.resolve()
    return (repo_root / candidate).resolve()


def format_lang(template: str, lang: str) -> str:
    return template.format(lang=lang, lang_lower=lang.lower())


def composed_config_name(composition) -> str:
    """What a ``composed_configs`` dataset loads for a composition, as ``{lang}`` of its config or
    local template: the languages joined by '_', plus '_sampled' (Lima-X's DE_FR_IT_ES,
    EN_DE_FR_IT_ES_sampled); a monolingual composition is its language."""
    return "_".join(composition.languages) + ("_sampled" if composition.sampled else "")


@dataclass(frozen=True)
class DataCell:
    """One training set: a dataset in a language composition, subsampled to a size with a seed."""

    dataset: str
    composition: str
    size: int | str
    seed: int

    @property
    def data_id(self) -> str:
        return f"{self.dataset}__{self.composition}__{self.size}__seed{self.seed}"


@dataclass(frozen=True)
class Cell:
    """One grid cell: a base model fine-tuned on one training set."""

    base_model: str
    data: DataCell

    @property
    def cell_id(self) -> str:
        """``<model>__<dataset>__<composition>__<size>__seed<seed>``: built here and parsed by ``parse``
        only (names are safe names, so '__' separates the fields)."""
        return f"{self.base_model}__{self.data.data_id}"

    @classmethod
    def parse(cls, cell_id: str) -> Cell:
        parts = cell_id.split("__")
        if len(parts) != 5 or not parts[4].startswith("seed") or not parts[4][4:].isdigit():
            raise ValueError(f"'{cell_id}' is not a cell id of the form <model>__<dataset>__<composition>__<size>__seed<n>")
        size = int(parts[3]) if parts[3].isdigit() else parts[3]
        return cls(base_model=parts[0], data=DataCell(dataset=parts[1], composition=parts[2], size=size,
                                                      seed=int(parts[4][4:])))

    def fields(self) -> dict[str, Any]:
        return {"cell": self.cell_id, "base_model": self.base_model, **asdict(self.data), "size": str(self.data.size)}


def count_local_items(spec: dict, languages: tuple[str, ...], repo_root: Path = REPO_ROOT) -> int:
    """Items present in every language of a local dataset (the parallel core)."""
    ids: set[str] | None = None
    for lang in languages:
        path = resolve_path(format_lang(spec["local"], lang), repo_root)
        if not path.exists():
            raise ConfigError(
                f"datasets: local file for language {lang} not found: {path} "
                f"(from template '{spec['local']}'); create it or remove {lang} from the compositions"
            )
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


class Grid:
    def __init__(self, config: dict, repo_root: Path = REPO_ROOT, dry_run: bool = False):
        self.config = config
        self.repo_root = repo_root
        self.dry_run = dry_run
        self.warnings: list[str] = []
        self.compositions = {}
        for index, name in enumerate(config["compositions"]):
            try:
                self.compositions[name] = parse_composition(name)
            except ValueError as error:
                raise ConfigError(f"compositions[{index}]: {error}") from None
        self.eval_languages = list(config["eval_languages"])
        for index, lang in enumerate(self.eval_languages):
            if lang not in LANGUAGES:
                raise ConfigError(f"eval_languages[{index}]: unknown language '{lang}'; allowed: {list(LANGUAGES)}")
        self.base_models = {}
        for index, model in enumerate(config["base_models"]):
            if model["name"] in self.base_models:
                raise ConfigError(f"base_models[{index}].name: '{model['name']}' is used twice; names must be unique")
            check_name(f"base_models[{index}].name", model["name"])
            self.base_models[model["name"]] = model
            self._check_base_model(model)
        self.datasets = config["datasets"]
        needed = tuple(lang for lang in LANGUAGES if any(lang in c.languages for c in self.compositions.values()))
        self.data_cells: dict[str, DataCell] = {}
        self.dataset_items: dict[str, int | None] = {}
        for name, spec in self.datasets.items():
            check_name(f"datasets.{name}", name)
            sizes_key = f"datasets.{name}.sizes" if "sizes" in spec else "sizes"
            sizes = spec.get("sizes", config["sizes"])
            if spec.get("composed_configs") and any(size != "full" for size in sizes):
                raise ConfigError(
                    f"datasets.{name}.sizes: {list(sizes)} with composed_configs: true; a composed dataset is "
                    f"loaded whole (the authors' own sets), so only 'full' is allowed; set datasets.{name}.sizes: "
                    "[full], or composed_configs: false to subset the monolingual configs"
                )
            available = self._available_items(name, spec, needed)
            self.dataset_items[name] = available
            for size in sizes:
                if size != "full" and available is not None and size > available:
                    raise ConfigError(
                        f"{sizes_key}: size {size} is larger than dataset '{name}', which has {available} items in "
                        f"every one of {list(needed)}; allowed: sizes up to {available}, or 'full'"
                    )
            for composition in self.compositions:
                for size in sizes:
                    for seed in config["seeds"]:
                        cell = DataCell(dataset=name, composition=composition, size=size, seed=seed)
                        self.data_cells[cell.data_id] = cell
        cells = [Cell(base_model=model, data=data) for model in self.base_models for data in self.data_cells.values()]
        self.cells = {cell.cell_id: cell for cell in cells}
        self._check_judge(config["judge"])
        for name in self.base_models:
            self._check_training(f"base_models[{name}].training", self.training_settings(name))
        if config["judge"].get("base_url") is None and config["judge"].get("serve"):
            self._check_training("judge.serve.training", self.judge_training_settings())

    def chat_template_setting(self, name: str) -> tuple[str, str]:
        """The ``chat_template`` of a base model and the config key it comes from."""
        model = self.base_models[name]
        if "chat_template" in model:
            return model["chat_template"], f"base_models[{name}].chat_template"
        return self.config.get("chat_template", "opengptx"), "chat_template"

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
            resolve_template_setting(self.resolve(setting) if setting.endswith(".jinja") else setting, template_key)
        except ChatFormatError as error:
            raise ConfigError(str(error)) from None
        if "path" not in model:
            return
        path = self.resolve(model["path"])
        if self.dry_run and not path.exists():
            self.warnings.append(f"base_models[{name}].path: '{path}' does not exist; set it before a real run")
            return
        try:
            check_local_model(path, f"base_models[{name}]", model.get("trust_remote_code", False),
                              setting, template_key)
        except BaseModelError as error:
            raise ConfigError(str(error)) from None

    def resolve(self, path: str) -> Path:
        return resolve_path(path, self.repo_root)

    def _check_training(self, key: str, settings: dict) -> None:
        """DeepSpeed preset exists; the effective batch splits over the processes a job will have
        (processes_per_node, else gpus_per_node, per node)."""
        from mlit.generate.batching import BatchSizeError, gradient_accumulation_steps

        preset = settings.get("deepspeed")
        if preset and not (self.repo_root / "config" / "deepspeed" / f"{preset}.json").exists() \
                and not resolve_path(preset, self.repo_root).exists():
            presets = sorted(p.stem for p in (self.repo_root / "config" / "deepspeed").glob("*.json"))
            raise ConfigError(f"{key}.deepspeed: '{preset}' is neither a preset ({presets}) nor an existing file")
        if settings.get("packing") and settings.get("effective_batch_size") is not None:
            raise ConfigError(
                f"{key}.packing: packing puts several examples into one row, so an optimizer step would hold "
                f"effective_batch_size={settings['effective_batch_size']} packed rows, not examples, and a small "
                "training set would get only a handful of steps; set packing: false (the study's FastChat recipe "
                "does not pack), or drop effective_batch_size and give gradient_accumulation_steps (packed rows)")
        per_node = settings.get("processes_per_node") or settings.get("gpus_per_node") or 1
        try:
            gradient_accumulation_steps(settings, per_node * settings.get("nodes", 1))
        except BatchSizeError as error:
            raise ConfigError(f"{key}: {error}") from None

    def _available_items(self, name: str, spec: dict, languages: tuple[str, ...]) -> int | None:
        if spec.get("composed_configs"):
            return spec.get("num_examples")  # only 'full' is allowed; row counts are checked at data prep
        if "local" in spec:
            count = count_local_items(spec, languages, self.repo_root)
            if "num_examples" in spec and spec["num_examples"] != count:
                raise ConfigError(
                    f"datasets.{name}.num_examples: says {spec['num_examples']} but the local files have {count} "
                    "parallel items; remove the key or correct it"
                )
            return count
        return spec.get("num_examples")

    def _check_judge(self, judge: dict) -> None:
        if judge.get("base_url") is None:
            serve = judge.get("serve")
            if not serve:
                raise ConfigError(
                    "judge.base_url: is null but judge.serve is not set; give an OpenAI-compatible base_url "
                    "(e.g. https://api.openai.com/v1) or a judge.serve section for the local demo judge"
                )
            if serve["base_model"] not in self.base_models:
                raise ConfigError(
                    f"judge.serve.base_model: '{serve['base_model']}' is not a base model; "
                    f"allowed: {sorted(self.base_models)}"
                )

    # --- lookups used by the rules -------------------------------------------------------------

    def cell_fields(self, cell_id: str) -> dict[str, Any]:
        """A cell's fields for the tables, with its examples per language ('full' resolved where the
        dataset's size is known), so that sizes compare across datasets."""
        cell = self.cells[cell_id]
        size = cell.data.size
        return {**cell.fields(),
                "examples_per_language": size if size != "full" else self.dataset_items[cell.data.dataset]}

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
        import hashlib

        model = self.base_models[name]
        setting, key = self.chat_template_setting(name)
        spec = {"name": name, "source": self.model_source(name, results), "chat_template": setting,
                "chat_template_key": key, "trust_remote_code": model.get("trust_remote_code", False)}
        if setting.endswith(".jinja"):
            path = self.resolve(setting)
            spec["chat_template"] = str(path)
            spec["chat_template_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        if "hub" in model:
            spec.update(hub=model["hub"], revision=model.get("revision"))
        return spec

    def training_settings(self, name: str) -> dict:
        settings = dict(self.config["training"])
        settings.update(self.base_models[name].get("training", {}))
        if settings.get("deepspeed") and not (self.repo_root / "config" / "deepspeed" /
                                              f"{settings['deepspeed']}.json").exists():
            settings["deepspeed"] = str(resolve_path(settings["deepspeed"], self.repo_root))
        return settings

    def train_slurm_resources(self, name: str) -> dict:
        """How a training job of base model ``name`` maps onto Slurm (profiles/slurm): ``nodes``; GPUs per
        node as ``gres`` (gres is per node, `gpu` would be per job); on several nodes one task (one
        launcher, started by `mlit train` through srun) per node as an ``mpi`` job, with
        ``tasks_per_gpu: 0`` so that the plugin does not turn ``tasks`` into --ntasks-per-gpu."""
        settings = self.training_settings(name)
        nodes = int(settings.get("nodes", 1))
        gpus = settings.get("gpus_per_node", 1)
        several = nodes > 1
        return {"nodes": nodes, "gres": f"gpu:{gpus}" if gpus else None, "tasks": nodes if several else None,
                "tasks_per_gpu": 0 if several else None, "mpi": "srun" if several else None}

    def job_resources(self, step: str, model: str | None = None) -> dict:
        """Cluster resources of one step (train, generate, judge): config `resources`, overridden per
        base model by `base_models[].resources`."""
        defaults = {"train": {"runtime": 240, "mem_mb": 32000}, "generate": {"runtime": 60, "mem_mb": 16000, "gpus": 1},
                    "judge": {"runtime": 120, "mem_mb": 4000}}[step]
        merged = {**defaults, **self.config.get("resources", {}).get(step, {})}
        if model is not None:
            merged.update(self.base_models[model].get("resources", {}).get(step, {}))
        return merged

    def judge_training_settings(self) -> dict:
        serve = self.config["judge"]["serve"]
        settings = self.training_settings(serve["base_model"])
        settings.update(serve.get("training", {}))
        return settings

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
        """How each step runs (mlit.run_settings): written to results/execution_settings.json."""
        from mlit.run_settings import execution_part

        settings = {"training": {name: execution_part("training", self.training_settings(name))
                                 for name in self.base_models},
                    "generation": execution_part("generation", self.config["generation"]),
                    "judge": execution_part("judge", self.config["judge"])}
        if self.config["judge"].get("base_url") is None and self.config["judge"].get("serve"):
            settings["judge_training"] = execution_part("training", self.judge_training_settings())
        return settings

    def training_languages(self) -> list[str]:
        """Languages of any composition (a slow tokenizer's conversion is checked on each)."""
        return [lang for lang in LANGUAGES if any(lang in c.languages for c in self.compositions.values())]

    def benchmark_dir(self) -> Path:
        return resolve_path(self.config["generation"]["benchmark_dir"], self.repo_root)

    def benchmark_files(self) -> list[str]:
        bench = self.benchmark_dir()
        return [str(bench / lang / name) for lang in self.eval_languages
                for name in ("question.jsonl", "judge_prompts.jsonl", "reference_answer_gpt-4.jsonl")]
