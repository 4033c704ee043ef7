"""Shared fixtures: synthetic MedMNIST+ data, reference folders, the genuine files when present."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from big import data, registry
from big.reference import build_reference

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BIG_SHARED_DATA", REPO.parent / "shared" / "data" / "medmnist"))
GENUINE_FILES = ("breastmnist.npz", "breastmnist_64.npz", "pneumoniamnist.npz", "retinamnist.npz")


def genuine_available() -> bool:
    return all((SHARED_DATA / f).is_file() for f in GENUINE_FILES)


needs_genuine = pytest.mark.skipif(not genuine_available(), reason=f"genuine MedMNIST files not in {SHARED_DATA}")


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """Synthetic files for all 12 datasets at 28 and 64 px (small splits)."""
    root = tmp_path_factory.mktemp("synth")
    data.synthesize(root, sizes=(28, 64), n_per_split="train=120,val=60,test=80", seed=7)
    return root


@pytest.fixture(scope="session")
def synth_ref(synth_root, tmp_path_factory) -> Path:
    return build_reference(synth_root, "test", tmp_path_factory.mktemp("ref") / "test", allow_synthetic=True)


@pytest.fixture(scope="session")
def mixed_root(tmp_path_factory) -> Path:
    """Genuine files (symlinked, never copied into the repo) beside synthetic ones for the other datasets."""
    if not genuine_available():
        pytest.skip(f"genuine MedMNIST files not in {SHARED_DATA}")
    root = tmp_path_factory.mktemp("mixed")
    genuine_flags = {"breastmnist", "pneumoniamnist", "retinamnist"}
    data.synthesize(root, sizes=(28,), n_per_split="train=120,val=60,test=80", seed=3,
                    flags=[f for f in registry.flags() if f not in genuine_flags])
    for f in GENUINE_FILES:
        if f.endswith("_64.npz"):
            continue
        os.symlink(SHARED_DATA / f, root / f)
    return root


def labels_of(ref_dir: Path) -> dict:
    from big.reference import Reference

    ref = Reference(ref_dir)
    return {f: ref.labels(f) for f in registry.flags()}


def oracle_predictions(labels: dict, *, noise: float = 0.0, seed: int = 0) -> dict:
    """Scores derived from the labels (noise 0 = perfect), valid in [0, 1]."""
    rng = np.random.default_rng(seed)
    out = {}
    for ds in registry.datasets():
        y = labels[ds.flag]
        if ds.kind == registry.MULTILABEL:
            s = y.astype(float)
        else:
            s = np.eye(ds.n_labels)[y[:, 0]]
        s = (1 - noise) * s + noise * rng.random(s.shape)
        out[ds.flag] = np.clip(s, 0.0, 1.0)
    return out


# --- the CodaBench-image virtualenvs (`make venvs` = `big image-env IMAGE`, big.imageenv) -----------

def image_python(name: str) -> Path:
    """Interpreter of the image venv ``name`` (py312, gpu310, big-gpu310) where the resolver keeps it.
    Missing: the test fails under CI=true (`make test` builds them all), else skips."""
    from big.imageenv import default_venv

    py = default_venv(name) / "bin" / "python"
    if not py.exists():
        msg = f"{py} is missing: run `make venvs` (or `big image-env {name}`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return py


def image_env(**extra: str) -> dict:
    """The environment for a program run in an image venv: no PYTHONPATH, no user site, no virtualenv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "BIG_"))}
    env["PYTHONNOUSERSITE"] = "1"
    env["MPLCONFIGDIR"] = env.get("MPLCONFIGDIR", "/tmp/mpl-big-tests")
    env.update(extra)
    return env


def bundled_program(name: str, dest: Path) -> Path:
    """A program folder as `big bundle` ships it (the package beside its entry point), via the builder."""
    from big.codabench.bundle import copy_program

    tables = REPO / "baselines" / "tables" if name == "scoring_program" else None
    return copy_program(REPO / name, dest, baselines_tables=tables)
