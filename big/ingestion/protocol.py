"""The worker's messages to the supervisor: one JSON object per line on a private pipe.

The model runs in the process that writes the pipe, so every line is untrusted input: the
supervisor (:mod:`.supervisor`) decodes it with :func:`decode` and checks it with :func:`check`
against the state of the run; anything the real worker never sends is a :class:`Violation`, which
stops the run with a message for the participant. The real worker sends, in this order::

    {"event": "stage", "stage": "import"}
    {"event": "model", "resolution": 28, "batch_size": 256, "device": "..." | null}
    {"event": "plan", "counts": {flag: n, ... all 12}}
    then for each flag in registry order:
      {"event": "dataset", "dataset": flag, "n": n, "batches": ceil(n / batch_size)}
      {"event": "batch", "dataset": flag, "batch": k, "done": rows done}       (k = 1, 2, ...)
      {"event": "dataset_done", "dataset": flag, "n": n, "seconds": s, "model_seconds": s}
    {"event": "done"}
    or at any point instead: {"event": "failed", "summary": str, "details": str, "dataset": flag | null,
                              "batch": k | null}   or   {"event": "error", "summary": str}
"""
from __future__ import annotations

import json
import math
from typing import Optional

from .. import registry

#: a line longer than this is refused (and the buffer never holds more)
MAX_LINE_BYTES = 256 << 10
#: the worker cuts what it sends to these many characters (its messages stay far below MAX_LINE_BYTES)
MAX_SUMMARY_CHARS = 4000
MAX_DETAILS_CHARS = 16000
MAX_IMAGES = 10 ** 9  # per dataset; far above any split
MAX_SECONDS = 1e9

FLAGS = tuple(registry.flags())
KEYS = {
    "stage": {"event", "stage"},
    "model": {"event", "resolution", "batch_size", "device"},
    "plan": {"event", "counts"},
    "dataset": {"event", "dataset", "n", "batches"},
    "batch": {"event", "dataset", "batch", "done"},
    "dataset_done": {"event", "dataset", "n", "seconds", "model_seconds"},
    "done": {"event"},
    "failed": {"event", "summary", "details", "dataset", "batch"},
    "error": {"event", "summary"},
}
OPTIONAL = {"model": {"device"}, "failed": {"details", "dataset", "batch"}}
OUTCOMES = ("done", "failed", "error")


class Violation(Exception):
    """A message the real worker never sends: the model's code wrote to (or broke) the channel."""


def cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + f"\n[... {len(text) - limit} characters omitted ...]\n" + text[-half:]


def show(value, limit: int = 80) -> str:
    """A short printable form of untrusted bytes or values, for a message."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a participant object's __repr__
        text = f"<a {type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def decode(line: bytes) -> dict:
    """One line -> a message dict, or :class:`Violation`."""
    try:
        msg = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Violation(f"a line that is not a JSON message: {show(line)}") from None
    if not isinstance(msg, dict):
        raise Violation(f"a JSON {type(msg).__name__} instead of a message: {show(line)}")
    return msg


def _bad(event: str, key: str, want: str, value) -> Violation:
    return Violation(f"a {event!r} message whose {key} is not {want} (found {show(value)})")


def _int(msg: dict, key: str, lo: int, hi: int) -> int:
    v = msg.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise _bad(msg["event"], key, f"an integer in [{lo}, {hi}]", v)
    return v


def _seconds(msg: dict, key: str) -> float:
    v = msg.get(key)
    if type(v) not in (int, float) or not math.isfinite(v) or not 0 <= v <= MAX_SECONDS:
        raise _bad(msg["event"], key, "a number of seconds", v)
    return float(v)


def _text(msg: dict, key: str, limit: int, optional: bool = False) -> Optional[str]:
    v = msg.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str):
        raise _bad(msg["event"], key, "a string", v)
    return cap(v, limit)


def check(msg: dict, prog) -> dict:
    """Validate ``msg`` against the run so far (``prog``: :class:`.supervisor.Progress`). Returns the
    message with its strings capped; raises :class:`Violation` for anything out of schema or order."""
    event = msg.get("event")
    if not isinstance(event, str) or event not in KEYS:
        raise Violation(f"a message with an unknown event {show(event)}")
    extra = sorted(set(msg) - KEYS[event])
    missing = sorted(KEYS[event] - set(msg) - OPTIONAL.get(event, set()))
    if extra or missing:
        what = (f"unexpected field(s) {', '.join(map(show, extra))}" if extra else "") + \
               ("; " if extra and missing else "") + (f"missing field(s) {', '.join(missing)}" if missing else "")
        raise Violation(f"a {event!r} message with {what}")
    out = dict(msg)
    if event == "stage":
        if msg.get("stage") != "import" or prog.stage != "start":
            raise Violation(f"an unexpected 'stage' message ({show(msg.get('stage'))}) at stage {prog.stage}")
    elif event == "model":
        if prog.resolution is not None or prog.stage not in ("start", "import"):
            raise Violation("a second 'model' message")
        res = msg.get("resolution")
        if type(res) is not int or res not in registry.SIZES:
            raise _bad(event, "resolution", f"one of {registry.SIZES}", res)
        _int(msg, "batch_size", 1, MAX_IMAGES)
        out["device"] = _text(msg, "device", 300, optional=True)
    elif event == "plan":
        if prog.resolution is None or prog.counts:
            raise Violation("a 'plan' message " + ("before the 'model' message" if prog.resolution is None
                                                   else "sent twice"))
        counts = msg.get("counts")
        if not isinstance(counts, dict) or sorted(counts) != sorted(FLAGS):
            raise _bad(event, "counts", "a count for each of the 12 datasets", counts)
        for flag in FLAGS:
            v = counts[flag]
            if type(v) is not int or not 0 <= v <= MAX_IMAGES:
                raise _bad(event, f"count of {flag}", f"an integer in [0, {MAX_IMAGES}]", v)
    elif event == "dataset":
        nxt = FLAGS[len(prog.finished)] if len(prog.finished) < len(FLAGS) else None
        if not prog.counts or prog.dataset is not None or msg.get("dataset") != nxt:
            raise Violation(f"an out-of-order 'dataset' message for {show(msg.get('dataset'))} "
                            f"(expected {nxt or 'none'})")
        n = _int(msg, "n", 0, MAX_IMAGES)
        if n != prog.counts[nxt]:
            raise _bad(event, "n", f"{prog.counts[nxt]} (the plan's count)", n)
        if _int(msg, "batches", 0, MAX_IMAGES) != -(-n // prog.batch_size):
            raise _bad(event, "batches", f"{-(-n // prog.batch_size)}", msg.get("batches"))
    elif event == "batch":
        if prog.dataset is None or msg.get("dataset") != prog.dataset:
            raise Violation(f"a 'batch' message for {show(msg.get('dataset'))} outside that dataset")
        _int(msg, "batch", prog.batch + 1, prog.batch + 1)
        done = _int(msg, "done", prog.done_in_dataset + 1, prog.n)
        if done != min(prog.n, prog.batch_size * (prog.batch + 1)):
            raise _bad(event, "done", f"{min(prog.n, prog.batch_size * (prog.batch + 1))}", done)
    elif event == "dataset_done":
        if prog.dataset is None or msg.get("dataset") != prog.dataset or prog.batch != prog.batches:
            raise Violation(f"a 'dataset_done' message for {show(msg.get('dataset'))} before all of its batches")
        _int(msg, "n", prog.n, prog.n)
        _seconds(msg, "seconds")
        _seconds(msg, "model_seconds")
    elif event == "done":
        if len(prog.finished) != len(FLAGS) or prog.dataset is not None:
            raise Violation(f"a 'done' message after {len(prog.finished)} of {len(FLAGS)} datasets")
    elif event in ("failed", "error"):
        out["summary"] = _text(msg, "summary", MAX_SUMMARY_CHARS) or "(no summary)"
        if event == "failed":
            out["details"] = _text(msg, "details", MAX_DETAILS_CHARS, optional=True) or ""
            ds = msg.get("dataset")
            if ds is not None and ds not in FLAGS:
                raise _bad(event, "dataset", "a dataset name", ds)
            b = msg.get("batch")
            if b is not None and (type(b) is not int or not 1 <= b <= MAX_IMAGES):
                raise _bad(event, "batch", "a batch number", b)
    return out
