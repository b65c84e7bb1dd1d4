# The two commands of the README:
#   make demo   - set up .venv and run the whole demo grid on the CPU (results/tables/)
#   make test   - set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test dag clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml envs/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r envs/requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

demo: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores 2

test: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest -v tests

dag: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --rulegraph | dot -Tsvg > results/rulegraph.svg

clean:
	rm -rf results .snakemake
