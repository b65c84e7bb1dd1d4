"""The config's schema and what follows from it alone: validation with the schema's defaults filled in
(``with_defaults``, the one place defaults live), a job's settings with their defaults
(``section_defaults``), the experiment keys of a job's settings (``experiment_part``), and config paths.
No file but the schema is read here; the grid (``mlit.config``) builds on it."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

from mlit.config_checks import ConfigValueError, check_values
from mlit.config_error import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


# Names that become paths, wildcards and parts of cell ids (datasets, base models): letters and digits,
# single '.', '-' or '_' between them. No '/', '..', spaces, quotes or shell characters, and no '_' (cell ids
# join their fields with '__').
SAFE_NAME = re.compile(r"^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$")


def check_name(key: str, name: str) -> None:
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ConfigError(f"{key}: {name!r} is not a safe name; use letters and digits with single '.', '-' or '_' "
                          "between them (e.g. 'bactrian-x', 'mixtral-8x7b')")


@functools.lru_cache(maxsize=1)
def _parsed_schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def _schema() -> dict:
    return copy.deepcopy(_parsed_schema())


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


def with_defaults(config: dict) -> dict:
    """Validate ``config`` against the schema and fill in every ``default:`` of it, in place (and return
    it): also inside list items (``base_models[]``) and in objects the config leaves out whose schema has
    ``default: {}`` (``resources.<step>``, ``annotation``, ``base_models[].training``), which are then
    filled in turn. The one mechanism for defaults (``Grid`` calls it; Snakemake's ``validate`` is not
    used). A value that breaks the schema raises ``ConfigError`` naming its key."""
    import jsonschema

    _check_values(config)  # bounded, before jsonschema (whose messages quote an alias bomb's expansion)
    _check_layout(config)
    errors = list(_filling_validator(_schema()).iter_errors(config))  # walks (and fills) the whole config
    error = jsonschema.exceptions.best_match(errors)
    if error is not None:
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
        where = where.removeprefix(".") or "config"
        if where in ("launch.judge.api_key_env", "judge.base_url"):  # jsonschema's message shows the value: maybe a key
            from mlit.redact import check_judge_endpoint

            try:
                check_judge_endpoint(_judge_key_env(config), config["judge"].get("base_url"))
            except ValueError as refused:
                raise ConfigError(str(refused)) from None
            if where == "judge.base_url" and isinstance(error.instance, str):
                raise ConfigError("judge.base_url: is not an http:// or https:// URL; give the OpenAI-compatible "
                                  "endpoint (e.g. https://api.openai.com/v1), or null for the local demo judge "
                                  "(judge.serve)")
            raise ConfigError(f"{where}: is not a string (a {type(error.instance).__name__}) or null")
        if where == "judge" and error.validator == "required" and "serve" in str(error.message):
            raise ConfigError("judge.base_url: is null (or not set) but judge.serve is not set; give an OpenAI-"
                              "compatible base_url (e.g. https://api.openai.com/v1) or a judge.serve section for "
                              "the local demo judge")
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


def _judge_key_env(config: dict):
    launch = config.get("launch") if isinstance(config.get("launch"), dict) else {}
    judge = launch.get("judge") if isinstance(launch.get("judge"), dict) else {}
    return judge.get("api_key_env", "OPENAI_API_KEY")


def _check_layout(config) -> None:
    from mlit.config_renames import check_layout

    try:
        check_layout(config)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _check_values(config) -> None:
    try:
        check_values(config)
    except ConfigValueError as error:
        raise ConfigError(str(error)) from None


def section_defaults(section: str, settings: dict | None) -> dict:
    """A copy of a job's settings (``training``, ``generation`` or ``judge``: the recipe section and its
    ``launch`` section, merged as the job gets them) with both sections' schema defaults filled in, as
    ``with_defaults`` does (not validated): for code that is also called with settings from elsewhere than
    the workflow's filled config (a command run by hand, a test)."""
    schema = _schema()
    filled = copy.deepcopy(settings or {})
    launch = schema["properties"]["launch"]["properties"][section]
    parts = (schema["properties"][section], {**schema["definitions"][launch["$ref"].rsplit("/", 1)[1]], **launch})
    known = set(JOB_EXTRAS.get(section, ())) | set(experiment_part(section, filled))
    known |= {key for key in filled if key in parts[1]["properties"]}
    unknown = sorted(set(filled) - known)
    if unknown:
        from mlit.config_renames import RENAMED

        hints = [f"{key} -> {'.'.join(RENAMED[(section, key)][:2])}" if (section, key) in RENAMED
                 else f"{key} (no such key)" for key in unknown]
        raise ConfigError(f"{section} settings: unknown key(s) {unknown}; the keys are those of {section} and "
                          f"launch.{section} (config/README.md): {', '.join(hints)}")
    for part in parts:
        for _ in _filling_validator({**part, "definitions": schema["definitions"]}).iter_errors(filled):
            pass  # only the filling; the workflow's config was validated as a whole
    for extra in JOB_EXTRAS.get(section, ()):
        filled.setdefault(extra, None)  # as the workflow's: launch.resources.<step>.gpus has no default
    return filled


# What a job's settings hold besides its config sections: the generate job's GPUs (launch.resources.generate.gpus)
JOB_EXTRAS = {"generation": ("gpus",)}


def experiment_part(section: str, settings: dict) -> dict:
    """The keys of a job's merged settings that its experiment section of the schema (``training``,
    ``generation``, ``judge``) defines: what a result depends on (a checkpoint's or a partial answer
    file's fingerprint), read from the schema, never from a list of keys."""
    schema = _parsed_schema()
    node = schema["properties"][section]
    keys = set(node.get("properties", {}))
    if "$ref" in node:
        keys |= set(schema["definitions"][node["$ref"].rsplit("/", 1)[1]]["properties"])
    return {key: value for key, value in settings.items() if key in keys}


def resolve_path(path: str, repo_root: Path = REPO_ROOT) -> Path:
    """A config path: absolute as given; else relative to the working directory if it exists there,
    else relative to the repository root (so the shipped data works from any working directory)."""
    candidate = Path(path)
    if candidate.is_absolute():
        return candidate
    if candidate.exists() or ("{" in path and candidate.parent.is_dir()):
        return candidate.resolve()
    return (repo_root / candidate).resolve()


def deepspeed_path(value: str | None, repo_root: Path = REPO_ROOT) -> Path | None:
    """``launch.training.deepspeed``: null, a preset name in config/deepspeed/ (zero2, zero3,
    zero3_offload) or a path to a DeepSpeed JSON config; the file (or None), else ConfigError."""
    if not value:
        return None
    presets = repo_root / "config" / "deepspeed"
    path = presets / f"{value}.json"
    if not path.exists():
        path = resolve_path(value, repo_root)
    if not path.exists():
        raise ConfigError(f"launch.training.deepspeed: '{value}' is neither a preset "
                          f"({sorted(p.stem for p in presets.glob('*.json'))}) nor an existing file")
    return path.resolve()


def format_lang(template: str, lang: str) -> str:
    return template.format(lang=lang, lang_lower=lang.lower())


