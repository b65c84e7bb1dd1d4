"""config/README.md: every key of workflow/schemas/config.schema.yaml, written from the schema.

``python -m mlit.config_doc`` rewrites the file; tests/test_config_layout.py checks that it is what the
schema gives (so a key added to the schema without a rewrite fails the tests).
"""

from __future__ import annotations

import json
import sys

from mlit.settings import REPO_ROOT, _parsed_schema

README = REPO_ROOT / "config" / "README.md"

HEADER = """# The config: every key

Generated from `workflow/schemas/config.schema.yaml` by `python -m mlit.config_doc` (a test checks that
this file is what the schema gives). The demo is `config/config.yaml`, the study `config/paper.yaml`, a
one-GPU run `config/smoke-gpu.yaml`. A `--configfile` replaces `config/config.yaml` (it is not merged).

A config has two parts:

- **The experiment**: the grid's axes (`datasets`, `compositions`, `sizes`, `seeds`, `base_models`,
  `eval_languages`, `chat_template`) and what defines each result: the training recipe (`training`, in
  TRL's `SFTConfig` names: `num_train_epochs`, `lr_scheduler_type`, `warmup_steps`, `use_liger_kernel`,
  ...; the project's own `effective_batch_size` and `system_message`), the answers (`generation`) and the
  judgments (`judge`). Each rule's params are its section verbatim (with the schema's defaults): an edit
  reruns that step and what depends on it.
- **The launch** (`launch`): how jobs run, never what they compute: nodes, processes, GPUs, DeepSpeed, the
  per-device batch split, checkpoint and log cadence, grace, timeouts, concurrency, prices, interpreters,
  cluster resources. Each Snakemake invocation writes it to `results/execution/<hash>.json`, which each
  job's command line names (not its params): an edit here reruns nothing, and it cannot override a
  param (a job refuses a key set in both).

Per base model, `base_models[].training`, `base_models[].generation` and `base_models[].launch` override
single keys of the global sections; the demo judge's recipe is `judge.serve.training` and its launch
`launch.judge_training`. A config of the layout before this split is refused with one line per old key
naming its new place (`mlit.config_renames`).

```yaml
training:                       # the recipe (experiment)
  num_train_epochs: 3
  learning_rate: 2.0e-5
  lr_scheduler_type: cosine
  warmup_steps: 0.03            # below 1: a fraction of the run; 1 or more: steps (as transformers reads it)
  effective_batch_size: 128     # examples per optimizer step on any number of GPUs
  max_length: 2048
generation: {benchmark_dir: data/mt_bench_x, max_new_tokens: 1024, dtype: float16}
judge: {model: gpt-4, base_url: "https://api.openai.com/v1", temperature: 0.0}
launch:                         # how it runs
  training: {per_device_train_batch_size: 4, deepspeed: zero2, gpus_per_node: 8, save_steps: 200}
  generation: {hf_compile: false}
  judge: {api_key_env: OPENAI_API_KEY, parallel: 8, prices_per_1k: {prompt_per_1k: 0.03, completion_per_1k: 0.06}}
  resources: {train: {runtime: 720, mem_mb: 480000}}
```

| key | type | default | what it is |
|---|---|---|---|
"""


def _type(node: dict) -> str:
    if "enum" in node:
        return " | ".join("null" if value is None else str(value) for value in node["enum"])
    if "oneOf" in node:
        return " or ".join(_type(option) for option in node["oneOf"])
    kind = node.get("type", "object" if "properties" in node else "")
    return " or ".join(kind) if isinstance(kind, list) else kind


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def rows(schema: dict, node: dict, where: str, inherited: dict | None = None) -> list[str]:
    """One table row per key under ``node`` (a schema object), depth first."""
    if "$ref" in node:
        definition = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        merged = {**definition, **{k: v for k, v in node.items() if k not in ("$ref", "properties")}}
        own = node.get("properties", {})
        merged["properties"] = {key: {**sub, **own.get(key, {})} for key, sub in definition.get("properties",
                                                                                                 {}).items()}
        node = merged
    out = []
    for key, sub in node.get("properties", {}).items():
        path = f"{where}.{key}" if where else key
        resolved = {**schema["definitions"][sub["$ref"].rsplit("/", 1)[1]], **sub} if "$ref" in sub else sub
        default = json.dumps(sub["default"]) if "default" in sub and sub["default"] != {} else ""
        out.append(f"| `{path}` | {_cell(_type(resolved))} | {_cell(default)} | {_cell(resolved.get('description', ''))} |")
        if resolved.get("properties") or "$ref" in sub:
            out += rows(schema, sub, path)
        items = resolved.get("items")
        if isinstance(items, dict) and items.get("properties"):
            out += rows(schema, items, f"{path}[]")
        extra = resolved.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("properties"):
            out += rows(schema, extra, f"{path}.<name>")
    return out


def render() -> str:
    schema = _parsed_schema()
    return HEADER + "\n".join(rows(schema, schema, "")) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        return 0 if README.read_text(encoding="utf-8") == text else 1
    README.write_text(text, encoding="utf-8")
    print(f"wrote {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
