# Two commands on a fresh clone:  `make demo` (the main job, offline)  and  `make test`.
# Each installs what it needs. Python 3.11 for the project; the CodaBench-image virtualenvs come from
# the one image resolver, `big image-env` (big/imageenv.py: the images' Python versions from pyenv and
# their exact package pins; .venv-big-gpu310 is the docker/ image, layered on .venv-gpu310).
PY311 ?= $(shell command -v python3.11 || echo python3)
PYENV_ROOT ?= $(HOME)/.pyenv
export PYENV_ROOT
VENV := .venv
PIP := $(VENV)/bin/pip

.PHONY: demo test venvs dev clean-venvs

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

test: dev venvs
	$(VENV)/bin/python -m pytest -q

clean-venvs:
	rm -rf $(VENV) .venv-py312 .venv-gpu310 .venv-big-gpu310
