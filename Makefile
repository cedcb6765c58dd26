# The workbook in two commands: `make workbook` and `make test`.
# Both create the virtual environment (.venv) when it is missing.

PYTHON_VERSION ?= 3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SIZE ?= 20000
SEED ?= 42
DATA ?= data
WAREHOUSE ?= $(DATA)/warehouse.duckdb
export PYTENSOR_FLAGS ?= base_compiledir=$(CURDIR)/.pytensor
export MPLBACKEND ?= Agg

.PHONY: env workbook sample collect integrate notebooks test lab bench clean

env: $(STAMP)

# uv installs the stack in seconds; it is itself installed with pip if missing.
$(STAMP): pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	UV="$$(command -v uv || echo python3 -m uv)"; \
	$$UV venv --allow-existing --python $(PYTHON_VERSION) $(VENV) && \
	$$UV pip install --python $(BIN)/python -e .
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

workbook: sample collect integrate notebooks

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
