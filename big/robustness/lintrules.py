"""``big lint`` rules of a BIG-C (robustness) bundle, called by :mod:`big.codabench.lint` when the
scoring programs' config says ``benchmark: robustness``.

* code submissions only: every task has an ingestion program and input data;
* the hidden phase (the last) sets ``hide_output`` and ``hide_prediction_output``: a model could
  otherwise copy the hidden corrupted images out through its logs or its prediction files;
* ``make_input_data_available`` is false (the Test images would be downloadable);
* the last phase's reference was made with a private seed, the others' may be public;
* every scoring program is the robustness one; the ingestion program has no ``/app/data`` fallback;
* stand-in, synthetic-source or incomplete corrupted sets are reported as test bundles.
"""
from __future__ import annotations

import json

from . import BENCHMARK
from .layout import GENERATOR_STANDIN
from .task import REFERENCE_FORMAT


def check_robustness(L, doc: dict, tasks: dict) -> None:
    import yaml

    if doc.get("make_input_data_available"):
        L.err("robustness", "make_input_data_available", "true: participants could download the hidden corrupted "
                                                         "Test images; set it to false")
    phases = sorted([p for p in doc.get("phases") or [] if isinstance(p, dict)],
                    key=lambda p: p.get("index", 0) if isinstance(p.get("index", 0), int) else 0)
    hidden = phases[-1] if phases else None
    if hidden is not None:
        where = f"phases ({hidden.get('name')})"
        for flag in ("hide_output", "hide_prediction_output"):
            if hidden.get(flag) is not True:
                L.err("robustness", where, f"{flag} is not true: in the hidden phase a model could copy the corrupted "
                                           "images out through its " + ("logs" if flag == "hide_output" else
                                                                         "prediction output") + "; set it to true")
    hidden_tasks = set(hidden.get("tasks") or []) if hidden else set()
    for idx, t in sorted(tasks.items()):
        where = f"tasks[{idx}]"
        for key in ("ingestion_program", "input_data"):
            if not isinstance(t.get(key), str):
                L.err("robustness", where, f"has no {key}: BIG-C scores code submissions only")
        sp = t.get("scoring_program")
        cfg = L.root / sp / "config.yaml" if isinstance(sp, str) else None
        bench = None
        if cfg is not None and cfg.is_file():
            try:
                bench = (yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}).get("benchmark")
            except (yaml.YAMLError, AttributeError):
                bench = None
        if bench != BENCHMARK:
            L.err("robustness", f"{where}.scoring_program", f"is not the robustness scoring program (benchmark "
                                                           f"{bench!r}): every task of a BIG-C bundle needs it")
        ip = t.get("ingestion_program")
        icfg = L.root / ip / "config.yaml" if isinstance(ip, str) else None
        if icfg is not None and icfg.is_file():
            try:
                data_dir = (yaml.safe_load(icfg.read_text(encoding="utf-8")) or {}).get("data_dir")
            except (yaml.YAMLError, AttributeError):
                data_dir = None
            if data_dir:
                L.warn("robustness", f"{where}.ingestion_program/config.yaml",
                       f"data_dir {data_dir!r}: a missing size would be read from the worker's /app/data (BIG's clean "
                       "images); BIG-C's images exist only in input_data (rebuild with big bundle)")
        rd = t.get("reference_data")
        man = L.root / rd / "manifest.json" if isinstance(rd, str) else None
        if man is None or not man.is_file():
            L.err("robustness", f"{where}.reference_data", "no manifest.json: not a BIG-C reference (big bundle "
                                                           "--benchmark robustness writes it)")
            continue
        try:
            m = json.loads(man.read_text(encoding="utf-8"))
        except ValueError:
            L.err("robustness", f"{where}.reference_data", "manifest.json is not valid JSON")
            continue
        if not isinstance(m, dict) or m.get("format") != REFERENCE_FORMAT:
            L.err("robustness", f"{where}.reference_data", f"format {m.get('format') if isinstance(m, dict) else m!r}, "
                                                           f"expected {REFERENCE_FORMAT}")
            continue
        if idx in hidden_tasks and m.get("seed_is_public"):
            L.err("robustness", f"{where}.reference_data", "the hidden phase's sample was made with the public seed: "
                                                           "its images and map can be recomputed; use a private --seed")
        if m.get("generator") == GENERATOR_STANDIN:
            L.warn("robustness", f"{where}.reference_data", f"{m.get('label')}: a test bundle")
        if m.get("synthetic"):
            L.warn("robustness", f"{where}.reference_data", "made from SYNTHETIC source files: a test bundle")
        if not m.get("complete"):
            L.warn("robustness", f"{where}.reference_data", "an incomplete corrupted set (not every corruption of "
                                                           "MedMNIST-C): a test bundle")
