# The workbook in two commands: `make workbook` and `make test`.
# Both create the virtual environment (.venv) when it is missing.

# Python 3.12, found without network: python3.12 on PATH, else a version manager's (pyenv,
# asdf), else one uv already manages. Override with `make PYTHON=/path/to/python3.12`.
PYTHON ?= $(shell for p in $$(command -v python3.12) \
	$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 $$HOME/.asdf/installs/python/3.12*/bin/python3.12 2>/dev/null | sort -rV) \
	$$( (command -v uv >/dev/null && uv python find 3.12) 2>/dev/null); do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo "$$p"; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SIZE ?= 20000
SEED ?= 42
DATA ?= data
WAREHOUSE ?= $(DATA)/warehouse.duckdb
export PYTENSOR_FLAGS ?= base_compiledir=$(CURDIR)/.pytensor
export MPLBACKEND ?= Agg

.PHONY: env workbook sample collect integrate notebooks report test lab bench clean

env: $(STAMP)

# uv creates .venv and installs the stack in seconds; without uv on PATH, the standard library's
# venv creates .venv and uv is installed into it with pip (nothing outside .venv changes).
# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set, Python would otherwise
# recompile pandas, matplotlib, seaborn and scipy at every start (10 s instead of 4 s here); the
# package itself is installed editable, so compileall compiles it (0.3 s of every report's kernel).
$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python 3.12 found (tried python3.12 on PATH, pyenv's and asdf's versions/3.12*," \
	  "uv python find 3.12). Install one (e.g. 'pyenv install 3.12', 'uv python install 3.12' or 'apt-get install python3.12')" \
	  "or pass PYTHON=/path/to/python3.12." >&2; exit 2; }
	@$(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null || { rm -rf $(VENV); \
	  if uv --version >/dev/null 2>&1; then uv venv --quiet --python $(PYTHON) $(VENV); \
	  else $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv; fi; }
	UV="$$(uv --version >/dev/null 2>&1 && echo uv || echo $(BIN)/uv)"; $$UV pip install --compile-bytecode --python $(BIN)/python -e .
	$(BIN)/python -m compileall -q crm_helpers
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

sample: $(STAMP)
	$(BIN)/crm sample --customers $(SIZE) --seed $(SEED) --out $(DATA)

collect: $(STAMP)
	$(BIN)/crm collect --data $(DATA) --warehouse $(WAREHOUSE)

integrate: $(STAMP)
	$(BIN)/crm integrate --data $(DATA) --warehouse $(WAREHOUSE)

notebooks: $(STAMP)
	$(BIN)/crm notebooks --data $(DATA) --warehouse $(WAREHOUSE) --out reports/workbook

# The periodic report of the latest month with data (reports/<period>/report.html, reports/index.html).
report: $(STAMP)
	$(BIN)/crm report --data $(DATA) --warehouse $(WAREHOUSE)

workbook: sample collect integrate notebooks report

test: $(STAMP)
	$(BIN)/python -m pytest tests notebooks --nbval-lax --durations=15

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks --allow-root

# Benchmarks run on demand (minutes to an hour); results go in bench/RESULTS.md.
bench: $(STAMP)
	$(BIN)/python bench/pipeline.py --sizes 20000 100000 --runs 3
	$(BIN)/python bench/bench_rfm.py --runs 3

clean:
	rm -rf reports/workbook $(DATA)/raw $(DATA)/truth $(DATA)/sources.yml $(WAREHOUSE)
