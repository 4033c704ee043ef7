"""``ingestion_program/config.yaml``: the ingestion program's options and the container paths."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from .. import limits
from ..errors import Problem, ReferenceDataError

PathLike = Union[str, os.PathLike]

DEFAULT_INPUT_DATA = "/app/input_data"
DEFAULT_OUTPUT = "/app/output"
DEFAULT_PROGRAM = "/app/ingested_program"
DEFAULT_DATA_DIR = "/app/data"


@dataclass
class IngestionConfig:
    """``ingestion_program/config.yaml``; ``big bundle`` writes ``time_budget_s`` and ``platform_cap_s``
    (:mod:`big.limits`: the budget is the effective limit min(cap, execution_time_limit) minus a margin)."""

    # whole ingestion run, from the program's start; default: CodaBench's default limit and cap (480 s)
    time_budget_s: float = float(limits.time_budget(limits.effective_limit(None, limits.DEFAULT_QUEUE_CAP_S)))
    stop_margin_s: float = 15.0  # stop the model this long before the budget (CSV move + status)
    batch_size: int = 256  # images per predict() call unless the Model sets batch_size
    window_bytes: int = 64 << 20  # bytes of images mapped at once
    data_dir: str = DEFAULT_DATA_DIR  # images-only fallback on the organizer's own worker
    log_head_bytes: int = 200_000  # participant output echoed in full up to this many bytes
    log_tail_bytes: int = 20_000  # then only the last this many bytes
    progress_every_s: float = 10.0
    # the platform's cap on every job, recorded by `big bundle` for `big lint` and `big run-local`
    # (None: the organizer's own queue, no cap); not used by the ingestion program itself
    platform_cap_s: Optional[float] = limits.DEFAULT_QUEUE_CAP_S

    @classmethod
    def from_mapping(cls, m: dict) -> "IngestionConfig":
        fields = cls.__dataclass_fields__
        unknown = sorted(set(m) - set(fields))
        if unknown:
            raise ReferenceDataError([Problem(f"unknown ingestion option(s) {', '.join(unknown)}; known: "
                                              f"{', '.join(fields)}")])
        cfg = cls(**m)
        problems = []
        for name in ("time_budget_s", "batch_size", "window_bytes", "progress_every_s"):
            val = getattr(cfg, name)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not val > 0:
                problems.append(Problem(f"{name} must be a positive number, found {val!r}"))
        cap = cfg.platform_cap_s
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap > 0):
            problems.append(Problem(f"platform_cap_s must be a positive number or null (own queue), found {cap!r}"))
        for name in ("stop_margin_s", "log_head_bytes", "log_tail_bytes"):
            val = getattr(cfg, name)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or val < 0:
                problems.append(Problem(f"{name} must be a number >= 0, found {val!r}"))
        if not problems and cfg.stop_margin_s >= cfg.time_budget_s:
            problems.append(Problem(f"stop_margin_s ({cfg.stop_margin_s}) must be below time_budget_s "
                                    f"({cfg.time_budget_s})"))
        if problems:
            raise ReferenceDataError(problems)
        cfg.batch_size, cfg.window_bytes = int(cfg.batch_size), int(cfg.window_bytes)
        return cfg


def load_config(path: Optional[PathLike]) -> IngestionConfig:
    if path is None or not Path(path).is_file():
        return IngestionConfig()
    text = Path(path).read_text(encoding="utf-8")
    try:
        import yaml

        m = yaml.safe_load(text)
    except ImportError:  # pragma: no cover - every CodaBench image has pyyaml; plain key: value fallback
        m = {}
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                k, _, v = line.partition(":")
                v = v.strip().strip("'\"")
                try:
                    m[k.strip()] = float(v) if "." in v else int(v)
                except ValueError:
                    m[k.strip()] = v
    except Exception as exc:  # yaml.YAMLError
        raise ReferenceDataError([Problem(f"not valid YAML ({exc})", file=str(path))]) from None
    if m is None:
        m = {}
    if not isinstance(m, dict):
        raise ReferenceDataError([Problem("expected a mapping of options", file=str(path))])
    return IngestionConfig.from_mapping(m)
