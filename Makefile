# The two commands of the README:
#   make demo   - set up .venv and run the whole demo grid on the CPU (results/tables/)
#   make test   - set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup setup-vllm system-deps demo demo-figures test check bench wheels gpu-rehearsal rulegraph dag report clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml envs/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r envs/requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# vLLM (CPU build) in its own environment: its pins clash with the training stack
VLLM_VENV ?= .venv-vllm
setup-vllm: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: envs/vllm.txt pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet -r envs/vllm.txt
	# PyPI's torchvision/torchaudio are CUDA builds that fail to import next to the CPU torch
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	$(VLLM_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

demo: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores 2

# The README's demo figures and tables (docs/demo/), copied from a finished `make demo` (results/tables/)
DEMO_FIGURES := score_by_size composition_x_language parallel_gain
demo-figures:
	mkdir -p docs/demo
	for name in $(DEMO_FIGURES); do cp results/tables/plots/$$name.png docs/demo/; done
	cp results/tables/main_table.md results/tables/parallel_gain.md results/tables/judge_health.md \
	  results/tables/judge_ratings.md results/tables/on_language_rate.md docs/demo/
	cp results/tables/demo-judge-no-rule/agreement_with_main.md docs/demo/judge_agreement.md
	cp results/tables/demo-judge-no-rule/comparisons_with_main.md docs/demo/judge_comparisons.md

# System packages the tests use: Slurm (slurmctld, slurmd, client) for the real-cluster tests and a
# C++ compiler for DeepSpeed's CPU ops. Installed with apt-get when run as root (CI); otherwise the
# Slurm tests are skipped with a message.
SYSTEM_PACKAGES := slurmctld slurmd slurm-client g++ procps
system-deps:
	@if command -v slurmctld >/dev/null && command -v g++ >/dev/null && command -v pgrep >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null; }; \
	else echo "note: $(SYSTEM_PACKAGES) not all installed and not root: Slurm tests will be skipped"; fi

# The two environments and the system packages are made side by side (-j3: pip and apt mostly wait on disk)
test:
	$(MAKE) --no-print-directory -j3 setup setup-vllm system-deps
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest -v -n 2 --dist loadfile --no-loadscope-reorder --durations=25 tests

# The fast tier (a few minutes): lint (ruff, snakefmt; `snakemake --lint` with only the warnings justified
# in tests/test_lint.py) and the tests that do not train, launch, serve, start Slurm or rehearse the GPU check
# (`-m "not slow and not slurm"`), on two pytest-xdist workers like make test. CI runs the full `make test`.
check: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/snakefmt --check Snakefile workflow/rules
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not slow and not slurm" tests

bench: setup setup-vllm
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/train_throughput.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/generate_throughput.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/judge_throughput.py

# Wheels for bench/gpu_check.sh on the GPU machine (no network): exactly the packages it lacks or has too old,
# compared with its package list (bench/gpu_machine_packages.txt, dated), at this environment's versions, for its
# Python (WHEELS_PYTHON, 3.12 there). Prints the plan, the files and the folder's size with the repository's
# (all of it must stay under the 64 MiB that travel). vLLM is not carried.
WHEELS_PYTHON ?= 3.12
wheels: setup
	$(BIN)/python bench/wheel_plan.py download --dest wheels --python-version $(WHEELS_PYTHON)

# The GPU check's rehearsal on this machine (the machine's packages in a fresh environment, the carried set
# installed as on the device, the check's CPU mode); also a test (tests/test_gpu_check_rehearsal.py)
gpu-rehearsal: setup
	$(BIN)/python bench/gpu_rehearsal.py

# The rule graph and the job DAG of a grid (CONFIG: the demo by default; `make dag CONFIG=config/paper.yaml`
# plans the study's grid without its checkpoints, as a dry run does): results/{rulegraph,dag}_<config>.dot,
# and .svg where graphviz's `dot` is installed. The report of a finished run: results/report.html.
CONFIG ?= config/config.yaml
GRAPH_NAME = $(basename $(notdir $(CONFIG)))
rulegraph dag: setup
	mkdir -p results
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --quiet all --configfile $(CONFIG) \
	  $(if $(filter dag,$@),--dag dot results/tables/main_table.csv,--rulegraph) > results/$@_$(GRAPH_NAME).dot
	@if command -v dot >/dev/null; then dot -Tsvg results/$@_$(GRAPH_NAME).dot > results/$@_$(GRAPH_NAME).svg \
	  && echo "results/$@_$(GRAPH_NAME).svg"; \
	else echo "results/$@_$(GRAPH_NAME).dot (graphviz's dot is not installed: no .svg)"; fi

report: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --report results/report.html

clean:
	rm -rf results .snakemake
