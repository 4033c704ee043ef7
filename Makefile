# Two commands on a fresh clone:  `make demo` (the main job, offline)  and  `make test`.
# Each installs what it needs. Python 3.11 for the project; the CodaBench-image virtualenvs come from
# the one image resolver, `big image-env` (big/imageenv.py: the images' Python versions from pyenv and
# their exact package pins; .venv-big-gpu310 is the docker/ image, layered on .venv-gpu310).
PY311 ?= $(shell command -v python3.11 || echo python3)
PYENV_ROOT ?= $(HOME)/.pyenv
export PYENV_ROOT
VENV := .venv
PIP := $(VENV)/bin/pip

.PHONY: demo test venvs dev clean-venvs robustness-env wheelhouse

$(VENV)/.installed: pyproject.toml
	$(PY311) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch/torchvision pinned: these builds lie on this machine's disk; timm needs torchvision
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e ".[train,dev]"
	$(PIP) install -q --no-deps "medmnist==3.0.2"
	touch $@

dev: $(VENV)/.installed

# the CodaBench images as venvs: py312 (results-only competitions), gpu310 (code track: python 3.10,
# torch 2.3.1) and big-gpu310 (docker/: gpu310 + torchvision and timm). Found in a second when they
# exist with the right pins; created or updated otherwise.
venvs: dev
	$(VENV)/bin/big image-env py312
	$(VENV)/bin/big image-env gpu310
	$(VENV)/bin/big image-env big-gpu310

demo: dev
	$(VENV)/bin/big demo

# The starting-kit test installs the kit into a fresh virtualenv without a registry: this wheelhouse
# holds setuptools at exactly the lowest version pyproject.toml's build requirement allows and wheels of
# the kit's dependencies (scripts/kit_wheelhouse.py; up to date in a second when pyproject is unchanged).
wheelhouse: dev
	$(VENV)/bin/python scripts/kit_wheelhouse.py .wheelhouse

# BIG-C's generation venv (`big corrupt` with MedMNIST-C's medmnistc): numpy 1.26, torch/torchvision,
# scikit-image 0.23.2, Wand + Debian's libmagickwand-dev (installed here, as root), an opencv build for
# numpy 1.x; medmnistc --no-deps; the project on its path (no install). Never used by the scorer or ingestion.
ROBUST_VENV := .venv-robustness
robustness-env: $(ROBUST_VENV)/.installed

$(ROBUST_VENV)/.installed: robustness/requirements.txt robustness/requirements-nodeps.txt
	@dpkg -s libmagickwand-dev >/dev/null 2>&1 || { echo "robustness-env: installing Debian's libmagickwand-dev (ImageMagick, for Wand)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmagickwand-dev) >/dev/null 2>&1 || { \
	  echo "robustness-env: cannot install Debian's libmagickwand-dev (needs root and Debian's package servers; try"; \
	  echo "  'apt-get install libmagickwand-dev' yourself). Without it medmnistc cannot run: 'big corrupt --stand-in'"; \
	  echo "  and the tests' stand-in still work, the genuine-medmnistc test is skipped."; exit 1; }; }
	rm -rf $(ROBUST_VENV)
	$(PY311) -m venv $(ROBUST_VENV)
	$(ROBUST_VENV)/bin/pip install -q --upgrade pip
	$(ROBUST_VENV)/bin/pip install -q -r robustness/requirements.txt
	$(ROBUST_VENV)/bin/pip install -q --no-deps -r robustness/requirements-nodeps.txt
	echo "$(CURDIR)" > "$$($(ROBUST_VENV)/bin/python -c 'import site; print(site.getsitepackages()[0])')/big_repo.pth"
	$(ROBUST_VENV)/bin/python -c "from big.robustness.corrupt import medmnistc_backend; print('robustness-env:', medmnistc_backend().label)"
	touch $@

# The suite runs in PYTEST_WORKERS processes (pytest-xdist), the tests of one file in one process
# (they share module fixtures): 2 took the suite from 17.5 to 10 min on a 2-core machine. PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2

# The robustness venv is built when it can be; without it the tests use `big corrupt --stand-in` and skip
# the genuine-medmnistc test, saying why. Under CI=true it must build (as the image venvs must exist).
test: dev venvs wheelhouse
	@$(MAKE) --no-print-directory robustness-env || { if [ "$$CI" = "true" ]; then echo "make test: the robustness venv is required under CI=true"; exit 1; fi; \
	  echo "make test: going on without $(ROBUST_VENV) (stand-in corruptions; the medmnistc tests skip)"; }
	$(VENV)/bin/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

clean-venvs:
	rm -rf $(VENV) .venv-py312 .venv-gpu310 .venv-big-gpu310 $(ROBUST_VENV)
