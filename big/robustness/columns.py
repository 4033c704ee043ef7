"""The BIG-C score keys = leaderboard columns, generated from one table (keys and titles <= 36 chars).

* ``auc_c`` (primary): mean over the 12 datasets of the dataset's mean corrupted AUC over its
  corruptions and severities; ``balacc_c``, ``kappa_c`` the same for balanced accuracy and kappa;
* ``auc_clean``: the same mean on the clean copy of the same sample (pooled with the corrupted images);
* ``auc_drop``: mean over the datasets of the relative drop (clean - corrupted) / clean of the AUC;
* ``{flag}_auc_c`` per dataset; ``resolution``.

Per-corruption and per-severity numbers go only into details.json and the detailed results page.
Standard library only (lint and the CLI import it).
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from .. import registry

#: (key, title, sorting, precision) of the summary columns, in leaderboard order
SUMMARY: Tuple[Tuple[str, str, str, int], ...] = (
    ("auc_c", "Mean corrupted AUC", "desc", 4),
    ("balacc_c", "Mean corrupted balanced acc.", "desc", 4),
    ("kappa_c", "Mean corrupted kappa", "desc", 4),
    ("auc_clean", "Mean clean AUC (same sample)", "desc", 4),
    ("auc_drop", "Mean relative AUC drop", "asc", 4),
    ("resolution", "Resolution", "desc", 0),
)
#: the corrupted means of the three BIG metrics
CORRUPTED_KEYS: Dict[str, str] = {"auc": "auc_c", "balacc": "balacc_c", "kappa": "kappa_c"}
PRIMARY = "auc_c"


def dataset_key(flag: str) -> str:
    return f"{flag}_auc_c"


def score_keys() -> List[str]:
    """Keys of the robustness scores.json, in leaderboard column order."""
    return [k for k, *_ in SUMMARY] + [dataset_key(d.flag) for d in registry.datasets()]


def leaderboard_columns() -> List[dict]:
    """The robustness leaderboard's columns (competition.yaml is generated from them)."""
    cols = []
    for key, title, sorting, precision in SUMMARY:
        cols.append({"title": title, "key": key, "index": len(cols), "sorting": sorting, "precision": precision})
    for d in registry.datasets():
        cols.append({"title": f"{d.python_class} corrupted AUC", "key": dataset_key(d.flag), "index": len(cols),
                     "sorting": "desc", "precision": 4})
    return cols
