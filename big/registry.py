"""The dataset registry and the score-key table: the two tables every other part reads.

``registry.json`` is generated from ``medmnist.INFO`` by ``scripts/gen_registry.py``; this module
only reads it (no medmnist import: it is in no CodaBench image). The score keys defined here are
the keys of scores.json and, identically, the leaderboard column keys of competition.yaml.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Tuple

REGISTRY_PATH = Path(__file__).with_name("registry.json")
SIZES: Tuple[int, ...] = (28, 64, 128, 224)
SPLITS: Tuple[str, ...] = ("train", "val", "test")

#: task families as the metrics branch on them (the thesis code branches on exactly these)
BINARY, MULTICLASS, MULTILABEL = "binary", "multiclass", "multilabel"

#: the three BIG metrics: key, title, short title (display only)
METRICS: Tuple[Tuple[str, str], ...] = (
    ("auc", "AUC"),
    ("balacc", "Balanced accuracy"),
    ("kappa", "Cohen's kappa"),
)
METRIC_KEYS: Tuple[str, ...] = tuple(k for k, _ in METRICS)
METRIC_TITLES: Dict[str, str] = dict(METRICS)


@dataclass(frozen=True)
class Dataset:
    """One MedMNIST+ 2D dataset as the benchmark sees it."""

    flag: str
    python_class: str
    task: str  # medmnist INFO task string
    n_labels: int  # number of score columns C (2 for binary, 14 for chestmnist)
    labels: Tuple[str, ...]
    n_channels: int
    n_samples: Dict[str, int]
    license: str
    description: str
    files: Dict[int, Dict[str, str]]

    @property
    def kind(self) -> str:
        """``binary``, ``multiclass`` (ordinal included, as in the thesis code) or ``multilabel``."""
        if self.task == "multi-label, binary-class":
            return MULTILABEL
        if self.task == "binary-class":
            return BINARY
        return MULTICLASS

    @property
    def label_width(self) -> int:
        """Columns of the stored label array: 14 for multi-label, else 1."""
        return self.n_labels if self.kind == MULTILABEL else 1

    def file_name(self, size: int) -> str:
        return self.files[int(size)]["file"]

    def md5(self, size: int) -> str:
        return self.files[int(size)]["md5"]

    def url(self, size: int) -> str:
        return self.files[int(size)]["url"]

    def image_shape(self, size: int) -> Tuple[int, ...]:
        return (size, size) if self.n_channels == 1 else (size, size, 3)


@lru_cache(maxsize=1)
def _load() -> dict:
    with open(REGISTRY_PATH, encoding="utf-8") as fh:
        return json.load(fh)


@lru_cache(maxsize=1)
def datasets() -> Tuple[Dataset, ...]:
    """The 12 datasets in medmnist INFO order."""
    out = []
    for d in _load()["datasets"]:
        out.append(Dataset(
            flag=d["flag"], python_class=d["python_class"], task=d["task"], n_labels=d["n_labels"],
            labels=tuple(d["labels"]), n_channels=d["n_channels"], n_samples=dict(d["n_samples"]),
            license=d["license"], description=d["description"],
            files={int(k): v for k, v in d["files"].items()},
        ))
    return tuple(out)


def flags() -> Tuple[str, ...]:
    return tuple(d.flag for d in datasets())


def get(flag: str) -> Dataset:
    for d in datasets():
        if d.flag == flag:
            return d
    raise KeyError(f"unknown dataset {flag!r}; the BIG datasets are: {', '.join(flags())}")


def medmnist_version() -> str:
    return _load()["medmnist_version"]


# ---------------------------------------------------------------------------------------------
# score keys = leaderboard columns (one table; competition.yaml is generated/checked from it)
# ---------------------------------------------------------------------------------------------

def score_keys() -> List[str]:
    """Keys of scores.json, in leaderboard column order."""
    keys = list(METRIC_KEYS) + ["resolution"]
    for d in datasets():
        keys += [f"{d.flag}_{m}" for m in METRIC_KEYS]
    return keys


def leaderboard_columns() -> List[dict]:
    """The leaderboard columns of competition.yaml, generated from the registry.

    Column 0 (``auc``) is the primary ranking column. Titles and keys stay within CodaBench's
    36-character limits; metrics show 4 decimals, the resolution 0.
    """
    cols = []
    for key in score_keys():
        if key in METRIC_TITLES:
            title = f"Mean {METRIC_TITLES[key]}" if key != "auc" else "Mean AUC"
            precision = 4
        elif key == "resolution":
            title, precision = "Resolution", 0
        else:
            flag, metric = key.rsplit("_", 1)
            title = f"{get(flag).python_class} {METRIC_TITLES[metric]}"
            precision = 4
        cols.append({"title": title, "key": key, "index": len(cols), "sorting": "desc", "precision": precision})
    return cols
