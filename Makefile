# Two commands on a fresh clone:  `make demo` (the main job, offline)  and  `make test`.
# Each installs what it needs. Python 3.11 for the project; the two CodaBench-image virtualenvs
# use pyenv's 3.12.1 and 3.10.13 with the exact package pins of those images.
PY311 ?= $(shell command -v python3.11 || echo python3)
PYENV_ROOT ?= $(HOME)/.pyenv
PY312 ?= $(PYENV_ROOT)/versions/3.12.1/bin/python
PY310 ?= $(PYENV_ROOT)/versions/3.10.13/bin/python
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

# codalab/codalab-legacy:py312 (results-only competitions)
.venv-py312/.installed:
	$(PY312) -m venv .venv-py312
	.venv-py312/bin/pip install -q numpy==1.26.4 scikit-learn==1.5.1 pandas==2.2.3 matplotlib==3.8.4 pyyaml==6.0.2
	touch $@

# codalab/codalab-legacy:gpu310 (code track): python 3.10, torch 2.3.1, no timm/torchvision
.venv-gpu310/.installed:
	$(PY310) -m venv .venv-gpu310
	.venv-gpu310/bin/pip install -q numpy==1.26.4 scikit-learn==1.5.0 pandas==2.2.2 matplotlib==3.9.0 PyYAML==6.0.1 torch==2.3.1
	touch $@

venvs: .venv-py312/.installed .venv-gpu310/.installed

demo: dev
	$(VENV)/bin/big demo

test: dev venvs
	$(VENV)/bin/python -m pytest -q

clean-venvs:
	rm -rf $(VENV) .venv-py312 .venv-gpu310
