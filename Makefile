# Two entry points on a fresh clone: `make demo` and `make test`. Both create/update .venv here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DECOMPOSER := $(BIN)/decomposer
# Offline unless a Mistral key is present: then the same commands call the real API.
REPLAY := $(if $(MISTRAL_API_KEY),,--replay fixtures/recordings)
REPLAY_CONTRAST := $(if $(MISTRAL_API_KEY),,--replay fixtures/recordings/contrast)
# The data dir is DECOMPOSER_HOME, else the per-user dir; `decomposer path` prints whichever.
PAGES = "$$($(DECOMPOSER) path)/pages"

.PHONY: install demo test lint typecheck check bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(DECOMPOSER) tool add "Mistral API" --type API --vendor "Mistral AI" --homepage https://docs.mistral.ai --exist-ok
	$(DECOMPOSER) tool add "Llama 4" --type Model --vendor Meta --homepage https://www.llama.com --exist-ok
	$(DECOMPOSER) ingest mistral-api fixtures/docs/mistral-api
	$(DECOMPOSER) ingest llama-4 fixtures/docs/llama-4
	$(DECOMPOSER) extract mistral-api $(REPLAY)
	$(DECOMPOSER) extract llama-4 $(REPLAY)
	$(DECOMPOSER) tool import fixtures/catalogue.toml
	$(DECOMPOSER) tools
	$(DECOMPOSER) runs
	$(DECOMPOSER) match import-queries fixtures/queries.csv
	$(DECOMPOSER) match run
	@# "vs alternatives" lines written from both tools' evidence, checked, waiting for review.
	$(DECOMPOSER) contrast --all $(REPLAY_CONTRAST)
	$(DECOMPOSER) lines list
	@# Nothing is reviewed yet, so the demo page shows the proposed capabilities as drafts.
	$(DECOMPOSER) compare mistral-api llama-4 --include-unreviewed --format md --out $(PAGES)/mistral-api-vs-llama-4.md
	$(DECOMPOSER) compare mistral-api llama-4 --include-unreviewed --format html --out $(PAGES)/mistral-api-vs-llama-4.html
	$(DECOMPOSER) compare mistral-api llama-4 --include-unreviewed --format json --out $(PAGES)/mistral-api-vs-llama-4.json
	$(DECOMPOSER) compare mistral-api llama-4 --include-unreviewed --copy llm $(REPLAY) --out $(PAGES)/mistral-api-vs-llama-4.model-copy.md
	@echo "Records are in $$($(DECOMPOSER) path)/; pages in $$($(DECOMPOSER) path)/pages/. Try: $(DECOMPOSER) capabilities mistral-api"

# pytest-xdist workers (one per core of the 2-core reference machine); PYTEST_WORKERS=0 runs the
# suite in one process, as plain `pytest` does.
PYTEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist load

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

# docs/cli.md and the module table in docs/architecture.md; tests/test_docs.py fails when stale.
docs: $(STAMP)
	$(BIN)/python scripts/gen_docs.py

bench: $(STAMP)
	$(BIN)/python scripts/bench_ingest.py
	$(BIN)/python scripts/bench_regenerate.py
	$(BIN)/python scripts/bench_match.py
	$(BIN)/python scripts/bench_extract.py --rps 20
	$(BIN)/python scripts/bench_cli.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
