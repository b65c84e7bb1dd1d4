"""The grid: checks a validated config for what a schema cannot say, and expands it into cells.

``Grid(config)`` first validates the config against ``workflow/schemas/config.schema.yaml`` and fills in
the schema's defaults (``with_defaults``: the one place defaults live, no code has fallbacks of its
own); then it checks languages, compositions, sizes against the data, and cross-references, and
raises ``ConfigError`` naming the key, the value and what is allowed. Nothing runs before that.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlit.config_checks import ConfigValueError, check_values, regular_file
from mlit.langs import LANGUAGES, parse_composition

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


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


def _schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def _filling_validator(schema: dict):
    """A JSON-schema (2020-12) validator that, before it checks an object's ``properties``, sets each one
    the object lacks and whose schema has a ``default:`` to (a copy of) that default. It descends into
    what it set, so a missing object with ``default: {}`` gets its own defaults, and into list items."""
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def fill_then_check(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])  # never one object shared by two places
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": fill_then_check})(schema)


# A hub id as written under base_models[].path by mistake: "org/name", no leading "." or "/", one slash
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def with_defaults(config: dict) -> dict:
    """Validate ``config`` against the schema and fill in every ``default:`` of it, in place (and return
    it): also inside list items (``base_models[]``) and in objects the config leaves out whose schema has
    ``default: {}`` (``resources.<step>``, ``annotation``, ``base_models[].training``), which are then
    filled in turn. The one mechanism for defaults (``Grid`` calls it; Snakemake's ``validate`` is not
    used). A value that breaks the schema raises ``ConfigError`` naming its key."""
    import jsonschema

    _check_values(config)  # bounded, before jsonschema (whose messages quote an alias bomb's expansion)
    errors = list(_filling_validator(_schema()).iter_errors(config))  # walks (and fills) the whole config
    error = jsonschema.exceptions.best_match(errors)
    if error is not None:
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
        where = where.removeprefix(".") or "config"
        if where in ("judge.api_key_env", "judge.base_url"):  # jsonschema's message shows the value: maybe a key
            from mlit.redact import check_judge_endpoint

            try:
                check_judge_endpoint(config["judge"].get("api_key_env"), config["judge"].get("base_url"))
            except ValueError as refused:
                raise ConfigError(str(refused)) from None
            raise ConfigError(f"{where}: is not a string (a {type(error.instance).__name__}) or null")
        if error.validator == "pattern" and error.validator_value == SAFE_NAME.pattern:
            check_name(where, error.instance)  # the same message as the grid's own check
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            raise ConfigError(unknown_keys_message(where, error.instance, error.schema))
        raise ConfigError(f"{where}: {error.message}")
    return config


def unknown_keys_message(where: str, instance: dict, schema: dict) -> str:
    """The keys of ``instance`` its schema does not allow, each with the closest allowed key (a typo)."""
    import difflib

    allowed = sorted(schema.get("properties", {}))
    parts = []
    for key in sorted(k for k in instance if k not in allowed):
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    owner = "the config" if where == "config" else where
    return f"{where}: unknown key{'s' * (len(parts) > 1)} {', '.join(parts)}; the keys of {owner} are: {', '.join(allowed)}"


def _check_values(config) -> None:
    try:
        check_values(config)
    except ConfigValueError as error:
        raise ConfigError(str(error)) from None


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


def section_defaults(section: str, settings: dict | None) -> dict:
    """A copy of one top-level section of a config (``judge``, ``generation``, ...) with that section's
    schema defaults filled in, as ``with_defaults`` does (not validated): for code that is also called
    with a section from elsewhere than the workflow's filled config (a command run by hand, a test)."""
    schema = _schema()
    filled = copy.deepcopy(settings or {})
    for _ in _filling_validator({**schema["properties"][section], "definitions": schema["definitions"]}) \
            .iter_errors(filled):
        pass  # only the filling; the workflow's config was validated as a whole
    return filled


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


# The cell of a base_models[] entry with evaluate_only: true (an already tuned model, FastChat-style):
# <name>__evaluated__as_is__none__seed0. Its composition is no language composition: the comparisons skip it.
EVALUATED_DATASET, AS_IS = "evaluated", "as_is"


def evaluated_cell(model: str) -> Cell:
    return Cell(base_model=model, data=DataCell(dataset=EVALUATED_DATASET, composition=AS_IS, size="none", seed=0))


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


class Grid:
    def __init__(self, config: dict, repo_root: Path = REPO_ROOT, dry_run: bool = False):
        """``config`` as read: validated and filled with the schema's defaults here, in place (the rules
        read the filled ``config``)."""
        _check_values(config)
        written = copy.deepcopy(config)
        self.config = with_defaults(config)
        # The training keys the config itself sets (before its defaults are filled in): the train steps'
        # params hold only these, as before the defaults moved into the schema (training_params).
        self.written_training = {model["name"]: set(written["training"]) | set(model.get("training", ()))
                                 for model in written["base_models"]}
        self.written_judge_training = set(written["judge"].get("serve", {}).get("training", ()))
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
            if lang in self.eval_languages[:index]:
                raise ConfigError(f"eval_languages[{index}]: '{lang}' is listed twice; list each language once")
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
            for index, size in enumerate(sizes):
                if isinstance(size, float):  # the schema's integer type takes 40.0; a slice does not
                    raise ConfigError(f"{sizes_key}[{index}]: {size} is not a whole number of examples; write "
                                      f"{int(size) if size.is_integer() else round(size)}")
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
        trained = [name for name, model in self.base_models.items() if not model["evaluate_only"]]
        cells = [Cell(base_model=model, data=data) for model in trained for data in self.data_cells.values()]
        self.cells = {cell.cell_id: cell for cell in cells}  # trained cells
        # base_models[].evaluate_only: an already tuned model, answered and judged as it is (no training job)
        self.evaluated_cells = {cell.cell_id: cell for cell in (evaluated_cell(name) for name, model in
                                                                self.base_models.items() if model["evaluate_only"])}
        self._check_judge(config["judge"])
        for name in self.base_models:
            self._check_training(f"base_models[{name}].training", self.training_settings(name))
        if config["judge"].get("base_url") is None and config["judge"].get("serve"):
            self._check_training("judge.serve.training", self.judge_training_settings())
        self._check_resources()

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
        from mlit.generate.batching import BatchSizeError, gradient_accumulation_steps

        preset = settings["deepspeed"]
        if preset and not (self.repo_root / "config" / "deepspeed" / f"{preset}.json").exists() \
                and not resolve_path(preset, self.repo_root).exists():
            presets = sorted(p.stem for p in (self.repo_root / "config" / "deepspeed").glob("*.json"))
            raise ConfigError(f"{key}.deepspeed: '{preset}' is neither a preset ({presets}) nor an existing file")
        if settings["packing"] and settings.get("effective_batch_size") is not None:
            raise ConfigError(
                f"{key}.packing: packing puts several examples into one row, so an optimizer step would hold "
                f"effective_batch_size={settings['effective_batch_size']} packed rows, not examples, and a small "
                "training set would get only a handful of steps; set packing: false (the study's FastChat recipe "
                "does not pack), or drop effective_batch_size and give gradient_accumulation_steps (packed rows)")
        if settings["padding_free"] and not settings["packing"]:
            raise ConfigError(
                f"{key}.padding_free: true without packing; TRL cannot truncate unpacked padding-free rows to "
                "max_length. Set padding_free: false, or packing: true (packed rows are padding-free already)")
        if settings["attn_implementation"] == "flash_attention_2" and settings["bf16"] is False:
            raise ConfigError(f"{key}.attn_implementation: flash_attention_2 needs bf16 (or fp16) weights on a GPU; "
                              "bf16 is false. Use sdpa, or set bf16: null")
        per_node = settings["processes_per_node"] or settings["gpus_per_node"] or 1
        try:
            gradient_accumulation_steps(settings, per_node * settings["nodes"])
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
            check_judge_endpoint(judge["api_key_env"], judge.get("base_url"))
        except ValueError as refused:
            raise ConfigError(str(refused)) from None
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

    def training_settings(self, name: str) -> dict:
        settings = dict(self.config["training"])
        settings.update(self.base_models[name]["training"])
        if settings["deepspeed"] and not (self.repo_root / "config" / "deepspeed" /
                                              f"{settings['deepspeed']}.json").exists():
            settings["deepspeed"] = str(resolve_path(settings["deepspeed"], self.repo_root))
        return settings

    def train_slurm_resources(self, name: str) -> dict:
        """How a training job of base model ``name`` maps onto Slurm (profiles/slurm): ``nodes``; GPUs per
        node as ``gres`` (gres is per node, `gpu` would be per job); on several nodes one task (one
        launcher, started by `mlit train` through srun) per node as an ``mpi`` job, with
        ``tasks_per_gpu: 0`` so that the plugin does not turn ``tasks`` into --ntasks-per-gpu."""
        settings = self.training_settings(name)
        nodes = int(settings["nodes"])
        gpus = settings["gpus_per_node"]
        several = nodes > 1
        return {"nodes": nodes, "gres": f"gpu:{gpus}" if gpus else None, "tasks": nodes if several else None,
                "tasks_per_gpu": 0 if several else None, "mpi": "srun" if several else None}

    def job_resources(self, step: str, model: str | None = None) -> dict:
        """Cluster resources of one step (train, generate, judge): config `resources`, overridden per
        base model by `base_models[].resources` (the defaults are the schema's)."""
        merged = dict(self.config["resources"][step])
        if model is not None:
            merged.update(self.base_models[model]["resources"][step])
        return merged

    def job_cpus(self, step: str, model: str | None = None) -> int | None:
        """CPUs per task (= per node) of a GPU step's job: its GPUs per node x ``cpus_per_gpu``, as the
        Slurm resource ``cpus_per_task``. The job-step executor starts the step with
        ``srun --cpus-per-task=<this>`` (with --cpus-per-gpu it falls back to the rule's threads, as it
        sees no SLURM_GPUS under --gres): the step gets every CPU the job holds. None: the rule's threads."""
        resources = self.job_resources(step, model)
        per_gpu = resources.get("cpus_per_gpu")
        gpus = self.training_settings(model)["gpus_per_node"] if step == "train" and model else resources.get("gpus")
        return per_gpu * gpus if per_gpu and gpus else None

    def capped_request(self, step: str, model: str | None, attempt: int) -> dict[str, int]:
        """``runtime`` and ``mem_mb`` of attempt ``attempt``: x attempt, but never above
        ``max_runtime`` (the partition's time limit) and ``max_mem_mb`` (a node's memory), which a
        cluster would refuse (or never schedule)."""
        resources = self.job_resources(step, model)
        runtime, mem = resources["runtime"] * attempt, resources["mem_mb"] * attempt
        if resources.get("max_runtime"):
            runtime = min(runtime, resources["max_runtime"])
        if resources.get("max_mem_mb"):
            mem = min(mem, resources["max_mem_mb"])
        return {"runtime": runtime, "mem_mb": mem}

    def _check_resources(self) -> None:
        """A first attempt must already fit: runtime <= max_runtime, mem_mb <= max_mem_mb."""
        for model in [None, *self.base_models]:
            for step in ("train", "generate", "judge"):
                resources = self.job_resources(step, model)
                where = f"base_models[{model}].resources.{step}" if model else f"resources.{step}"
                for key, limit in (("runtime", "max_runtime"), ("mem_mb", "max_mem_mb")):
                    if resources.get(limit) and resources[key] > resources[limit]:
                        raise ConfigError(f"{where}.{key}={resources[key]} is above {limit}={resources[limit]}: "
                                          f"the cluster would refuse the job; lower {key} or raise {limit}")

    def generation_settings(self, name: str) -> dict:
        """The generation settings of base model ``name``: the global ``generation`` section with
        ``base_models[].generation`` merged over it (as for ``training``), plus ``gpus``: the generate
        job's GPUs (``resources.generate.gpus``, per base model), vLLM's tensor parallel size."""
        settings = dict(self.config["generation"])
        settings.update(self.base_models[name].get("generation", {}))
        settings["gpus"] = self.job_resources("generate", name).get("gpus")
        return settings

    def judge_training_settings(self) -> dict:
        serve = self.config["judge"]["serve"]
        settings = self.training_settings(serve["base_model"])
        settings.update(serve["training"])
        return settings

    def training_params(self, name: str) -> dict:
        """The train step's params for base model ``name``: the experiment part of its training settings,
        of the keys the config sets. Defaults of keys it leaves out reach the job through the execution
        file (``execution_settings``), so that filling defaults in changes no params (no rerun)."""
        from mlit.run_settings import experiment_part

        written = self.written_training[name]
        return experiment_part("training", {k: v for k, v in self.training_settings(name).items() if k in written})

    def judge_training_params(self) -> dict:
        """The train_judge step's params, as ``training_params``."""
        from mlit.run_settings import experiment_part

        written = self.written_training[self.config["judge"]["serve"]["base_model"]] | self.written_judge_training
        return experiment_part("training", {k: v for k, v in self.judge_training_settings().items() if k in written})

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
        """How each step runs (mlit.run_settings): written to results/execution/<hash>.json. A training
        section also holds the schema's defaults of the experiment keys the config leaves out (they are
        not in the params, see ``training_params``): params + section = the full settings."""
        from mlit.run_settings import execution_part

        def rest(settings: dict, params: dict) -> dict:
            return {key: value for key, value in settings.items() if key not in params}

        generation = {name: execution_part("generation", self.generation_settings(name)) for name in self.base_models}
        settings = {"training": {name: rest(self.training_settings(name), self.training_params(name))
                                 for name in self.base_models},
                    # per cell (the generate job's section, generation/<cell>): its base model's settings
                    "generation": {cell_id: generation[cell.base_model] for cell_id, cell in self.cells.items()},
                    "judge": execution_part("judge", self.config["judge"])}
        if self.config["judge"].get("base_url") is None and self.config["judge"].get("serve"):
            settings["judge_training"] = rest(self.judge_training_settings(), self.judge_training_params())
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
