#!/usr/bin/env bash
# One GPU check, as one prepared call on the GPU machine lent here (one H200, Python 3.12, torch 2.11,
# transformers 5.17, no network; its packages: bench/gpu_machine_packages.txt), on a locally built
# Llama-shaped 1.24B model (no hub):
#   0. the packages the machine lacks or has too old, from the wheel folder (`make wheels`), into a target
#      folder first on PYTHONPATH; every version printed (bench/gpu_check_versions.py);
#   1. training throughput (bench/train_throughput.py, preset gpu-1b): the project's path against TRL's
#      defaults: tokens/s, MFU, peak memory, loss;
#   2. a one-process DeepSpeed ZeRO-3 run of `mlit train` (NCCL on a GPU): a few steps, the 16-bit gather
#      at save, the saved-weights check;
#   3. generation (bench/generate_throughput.py): HF batched against one question at a time.
# vLLM is not carried (311 MiB; it pins another torch).
#
#   bash bench/gpu_check.sh                     # on the GPU machine, from the repository root or anywhere
#   GPU_CHECK_DRY=1 bash bench/gpu_check.sh     # the same steps on the CPU with the tiny model
#   PYTHON=/path/to/python GPU_CHECK_WHEELS=DIR GPU_CHECK_SITE=DIR bash bench/gpu_check.sh
# Knobs: GPU_CHECK_EXAMPLES (training chats), GPU_CHECK_NEW_TOKENS, GPU_CHECK_BATCH, GPU_CHECK_ONE_AT_A_TIME,
# GPU_CHECK_ZERO3_STEPS, GPU_CHECK_TUNE_EPOCHS (the generation model's fine-tuning).
# The rehearsal (tests/test_gpu_check_rehearsal.py) runs the CPU mode in an environment holding only the
# machine's packages, after the same install command: a missing package or a version clash fails it there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DRY=${GPU_CHECK_DRY:-0}
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1

# The packages the machine lacks or has too old (bench/wheel_plan.py against bench/gpu_machine_packages.txt),
# from the wheel folder that `make wheels` fills, go into a target folder first on PYTHONPATH: a carried
# transformers shadows the machine's. The same command runs in the rehearsal (tests/test_gpu_check_rehearsal.py).
WHEELS=${GPU_CHECK_WHEELS:-wheels}
SITE=${GPU_CHECK_SITE:-${TMPDIR:-/tmp}/gpu-check-site}
install_carried() {
  rm -rf "$SITE"
  shopt -s nullglob
  local files=("$WHEELS"/*.whl "$WHEELS"/*.tar.gz)
  shopt -u nullglob
  if [ ${#files[@]} -eq 0 ]; then
    echo "$WHEELS has no wheels: run 'make wheels' on a machine with PyPI access and carry the folder" >&2
    exit 1
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --no-build-isolation --upgrade \
    --target "$SITE" "${files[@]}"
  echo "installed ${#files[@]} files from $WHEELS into $SITE: $(cd "$WHEELS" && ls | tr '\n' ' ')"
}

started=$(date +%s)
stage() { echo; echo "=== [$(( $(date +%s) - started )) s] $*"; }

echo "command: $0 $*  (GPU_CHECK_DRY=$DRY, PYTHON=$PY)"
echo "machine: $(uname -m), $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
stage "carried packages ($WHEELS -> $SITE, no network); vllm is not carried (311 MiB, pins another torch): HF generation only"
install_carried
export PYTHONPATH="$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

stage "versions (every package the check imports; carried ones must shadow the machine's)"
"$PY" bench/gpu_check_versions.py "$WHEELS" "$SITE"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-XXXXXX")
if [ "$DRY" = 1 ]; then
  PRESET=cpu-tiny EXAMPLES=${GPU_CHECK_EXAMPLES:-96} NEW_TOKENS=${GPU_CHECK_NEW_TOKENS:-16}
  BATCH=${GPU_CHECK_BATCH:-16} ONE=${GPU_CHECK_ONE_AT_A_TIME:-2}
  ZERO3_STEPS=${GPU_CHECK_ZERO3_STEPS:-2} REPEATS=${GPU_CHECK_REPEATS:-1}
  TUNE_EPOCHS=${GPU_CHECK_TUNE_EPOCHS:-1}  # 20 steps: the 16-token answers run to the limit either way
else
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no GPU visible (set GPU_CHECK_DRY=1 for the CPU dry run)" >&2
    exit 1
  fi
  PRESET=gpu-1b EXAMPLES=${GPU_CHECK_EXAMPLES:-320} NEW_TOKENS=${GPU_CHECK_NEW_TOKENS:-128}
  BATCH=${GPU_CHECK_BATCH:-80} ONE=${GPU_CHECK_ONE_AT_A_TIME:-3}
  ZERO3_STEPS=${GPU_CHECK_ZERO3_STEPS:-5} REPEATS=${GPU_CHECK_REPEATS:-3}
  TUNE_EPOCHS=${GPU_CHECK_TUNE_EPOCHS:-3}
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

stage "training throughput: the paper's settings, variants, TRL defaults ($EXAMPLES chats, $REPEATS repeats)"
"$PY" bench/train_throughput.py --preset "$PRESET" --model "$WORK/model" --examples "$EXAMPLES" \
  --repeats "$REPEATS" --out "$WORK/train.json"

stage "DeepSpeed ZeRO-3, one process: mlit train ($ZERO3_STEPS steps, 16-bit gather at save, saved-weights check)"
"$PY" - "$WORK/zero3.jsonl" <<'EOF'
import sys

sys.path[:0] = ["src", "bench"]
from train_throughput import synthetic_chats  # noqa: E402

from mlit.files import write_jsonl  # noqa: E402

write_jsonl(sys.argv[1], synthetic_chats(64, seed=1))
EOF
ZERO3_SETTINGS="{\"deepspeed\": \"zero3\", \"learning_rate\": 2e-5, \"processes_per_node\": 1, \"max_steps\": $ZERO3_STEPS, \"per_device_train_batch_size\": 4, \"effective_batch_size\": 4, \"max_length\": 512, \"logging_steps\": 1, \"save_steps\": 1000}"
"$PY" -m mlit train --base "$WORK/model" --data "$WORK/zero3.jsonl" --out "$WORK/zero3-model" --seed 1 \
  --settings "$ZERO3_SETTINGS"
"$PY" - "$WORK/zero3-model" <<'EOF'
import json
import sys
from pathlib import Path

info = json.loads((Path(sys.argv[1]) / "train_info.json").read_text())
assert info["global_steps"] >= 1 and info["parameters"] > 0 and info["deepspeed"].endswith("zero3.json"), info
print(f"zero3: {info['global_steps']} steps, {info['parameters']:,} parameters saved and checked, last loss "
      f"{info['last_logged_loss']}, {info['wall_time_s']} s, packages {info['packages']}")
EOF

stage "generation (a model that stops: the tiny one fine-tuned first, $TUNE_EPOCHS epochs): HF batched (batch $BATCH) vs one at a time ($ONE questions), $NEW_TOKENS new tokens"
"$PY" bench/generate_throughput.py --only "hf one-at-a-time" "hf batched" --max-new-tokens "$NEW_TOKENS" \
  --batch-size "$BATCH" --one-at-a-time-questions "$ONE" --repeats "$REPEATS" --tune-epochs "$TUNE_EPOCHS" | tee "$WORK/generate.txt"

stage "summary"
"$PY" - "$WORK" <<'EOF'
import json
import sys
from pathlib import Path

work = Path(sys.argv[1])
train = json.loads((work / "train.json").read_text())
print(f"train peak {train['peak_flops'] / 1e12:.3f} TFLOP/s measured ({train['peak']})")
for name, v in train["variants"].items():
    vs = "  ".join(f"vs {ref} {sorted(r)[len(r) // 2]:.2f}x ({min(r):.2f}-{max(r):.2f})" for ref, r in v["ratios"].items())
    print(f"train {name:17} {v['tokens_per_s']:10.0f} tokens/s  MFU {v['mfu']:6.1%}  final loss {v['final_loss']:.3f}  {vs}")
for line in (work / "generate.txt").read_text().splitlines():  # its table: x = tokens/s against one at a time
    if line.startswith(("run ", "hf ", "vllm ", "backend ")) or line.startswith("x:"):
        print("generate | " + line)
EOF
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "total $(( $(date +%s) - started )) s; files in $WORK"
