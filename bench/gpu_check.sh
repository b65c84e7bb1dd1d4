#!/usr/bin/env bash
# One GPU check, under 8 minutes on one H100, on a bare machine (torch, transformers, accelerate; no
# network): on the same locally built Llama-shaped 1.24B model (no hub),
#   1. training throughput (bench/train_throughput.py, preset gpu-1b): the project's path against TRL's
#      defaults with every other setting equal: tokens/s, MFU, peak memory;
#   2. generation (bench/generate_throughput.py): HF batched against one question at a time (vLLM too
#      where .venv-vllm exists; else skipped);
# then the ratios. Missing small packages (trl, datasets, ...) are installed from wheels/ (git-ignored),
# which `make wheels` fills on a machine with PyPI access (the list: bash bench/gpu_check.sh --wheel-list).
#
#   bash bench/gpu_check.sh                     # on the GPU machine, from the repository root or anywhere
#   GPU_CHECK_DRY=1 bash bench/gpu_check.sh     # the same steps on the CPU with the tiny model (~1-2 min)
#   PYTHON=/path/to/python bash bench/gpu_check.sh
# Knobs: GPU_CHECK_EXAMPLES (training chats), GPU_CHECK_NEW_TOKENS, GPU_CHECK_BATCH, GPU_CHECK_ONE_AT_A_TIME.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DRY=${GPU_CHECK_DRY:-0}
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1

wheel_list() {
  # what the benches need beyond torch, transformers and accelerate (and all their dependencies),
  # pinned to the versions of this environment (made from envs/requirements.txt)
  "$PY" - <<'EOF'
import re
from importlib import metadata

from packaging.requirements import Requirement

BASE = ["torch", "transformers", "accelerate"]
WANTED = ["trl", "datasets", "pyyaml", "polars"]


def closure(names):
    seen, todo = {}, list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


base = closure(BASE)
print("\n".join(f"{name}=={version}" for name, version in sorted(closure(WANTED).items()) if name not in base))
EOF
}

if [ "${1:-}" = "--wheel-list" ]; then
  wheel_list
  exit 0
fi

started=$(date +%s)
stage() { echo; echo "=== [$(( $(date +%s) - started )) s] $*"; }

stage "environment"
"$PY" - <<'EOF'
import platform

import torch
import transformers
import accelerate

cuda = torch.cuda.is_available()
print(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
      f"accelerate {accelerate.__version__}, device {torch.cuda.get_device_name() if cuda else 'cpu'}")
EOF

stage "packages missing here, installed from wheels/ (no network)"
# the wheels whose distribution is not installed yet; installed without dependencies (the folder holds them)
to_install=$("$PY" - <<'EOF'
import re
from importlib import metadata
from pathlib import Path

for wheel in sorted(Path("wheels").glob("*.whl")):
    name = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        print(wheel)
EOF
)
if [ -n "$to_install" ]; then
  # shellcheck disable=SC2086
  "$PY" -m pip install --quiet --no-index --no-deps $to_install
  echo "installed: $(echo "$to_install" | xargs -n1 basename | tr '\n' ' ')"
else
  echo "nothing to install"
fi
if ! "$PY" -c "import trl, datasets, yaml" 2>/dev/null; then
  echo "trl / datasets / pyyaml cannot be imported and wheels/ does not have them: run 'make wheels' on a" \
       "machine with PyPI access (WHEELS_PYTHON=<this python's X.Y>) and copy wheels/ here" >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-XXXXXX")
if [ "$DRY" = 1 ]; then
  PRESET=cpu-tiny EXAMPLES=${GPU_CHECK_EXAMPLES:-96} NEW_TOKENS=${GPU_CHECK_NEW_TOKENS:-16}
  BATCH=${GPU_CHECK_BATCH:-16} ONE=${GPU_CHECK_ONE_AT_A_TIME:-2}
else
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no GPU visible (set GPU_CHECK_DRY=1 for the CPU dry run)" >&2
    exit 1
  fi
  PRESET=gpu-1b EXAMPLES=${GPU_CHECK_EXAMPLES:-1200} NEW_TOKENS=${GPU_CHECK_NEW_TOKENS:-128}
  BATCH=${GPU_CHECK_BATCH:-80} ONE=${GPU_CHECK_ONE_AT_A_TIME:-3}
fi

stage "model: preset $PRESET, built from a config (random weights, tokenizer trained on data/demo)"
"$PY" - "$PRESET" "$WORK/model" <<'EOF'
import sys
from pathlib import Path

sys.path[:0] = ["src", "bench"]
from train_throughput import PRESETS  # noqa: E402

from mlit.model.tiny import build_base_model  # noqa: E402

corpus = [f"data/demo/instructions_{lang}.jsonl" for lang in ("EN", "DE", "FR", "IT", "ES")]
build_base_model(PRESETS[sys.argv[1]]["model"], corpus, Path(sys.argv[2]))
EOF

stage "training throughput: project path vs TRL defaults ($EXAMPLES chats)"
"$PY" bench/train_throughput.py --preset "$PRESET" --model "$WORK/model" --examples "$EXAMPLES" \
  --out "$WORK/train.json"

stage "generation: HF batched (batch $BATCH) vs one at a time ($ONE questions), $NEW_TOKENS new tokens"
"$PY" bench/generate_throughput.py --model "$WORK/model" --max-new-tokens "$NEW_TOKENS" --batch-size "$BATCH" \
  --one-at-a-time-questions "$ONE" | tee "$WORK/generate.txt"

stage "summary"
"$PY" - "$WORK" <<'EOF'
import json
import sys
from pathlib import Path

work = Path(sys.argv[1])
train = json.loads((work / "train.json").read_text())
by = {r["variant"]: r for r in train["results"]}
for name, r in by.items():
    mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
    print(f"train {name:13} {r['tokens_per_s']:10.0f} tokens/s  MFU {mfu:>6}  peak {r['peak_memory_gib']:.2f} GiB")
print(f"train ratio mlit / trl_defaults: {train['ratio']:.2f}x tokens/s, {train['memory_ratio']:.2f}x peak memory")
for line in (work / "generate.txt").read_text().splitlines():  # its table: x = tokens/s against one at a time
    if line.startswith(("run ", "hf ", "vllm ", "backend ")) or line.startswith("x:"):
        print("generate | " + line)
EOF
echo "total $(( $(date +%s) - started )) s; files in $WORK"
