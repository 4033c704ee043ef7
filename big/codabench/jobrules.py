"""What CodaBench's compute worker does to a job, as pure functions (reference codabench.md §2).

The rules ``big run-local`` (:mod:`big.codabench.worker`) applies, each unit-tested on its own:
``metadata.yaml`` then ``metadata`` at a program's root and its command; ``$placeholders`` replaced
as plain text; container paths (/app/...) mapped to run folders, in the command and in a program's
``config.yaml``; the environment every container gets; the docker arguments; scores.json read as
the worker reads it, the score upload the server may refuse, and the match with the leaderboard
columns; the line run-local prints per leaderboard rule.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

#: capabilities the worker drops (compute_worker.py)
CAP_DROP = ("AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
            "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT")
METADATA_EXISTS = ("Error, the output directory already contains a metadata file. This file is used to store "
                   "exitCode and other data, do not write to this file manually.")
#: the environment the worker gives every container (codabench.org's workers set no proxy)
WORKER_ENV = {"PYTHONUNBUFFERED": "1", "http_proxy": "", "https_proxy": ""}
#: the CDI device a worker started with USE_GPU=true requests (GPU_DEVICE, default all GPUs)
GPU_DEVICE = "nvidia.com/gpu=all"
#: host variables a local run keeps (the rest of this shell's environment is not in a container)
HOST_ENV_KEEP = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM",
                 "MPLCONFIGDIR")
TIME_LIMIT_MESSAGE = "Execution Time Limit exceeded. Limit was {limit} seconds"
PAST_LIMIT = ("kill", "run-on")


# ---------------------------------------------------------------------------------------------
# the worker's small rules, as pure functions (unit-tested one by one)
# ---------------------------------------------------------------------------------------------

def find_metadata(folder: Path) -> Optional[Path]:
    """``metadata.yaml`` first, then ``metadata``, at the folder root (as the worker looks)."""
    for name in ("metadata.yaml", "metadata"):
        if (folder / name).is_file():
            return folder / name
    return None
def read_command(folder: Path) -> Tuple[str, Optional[str]]:
    """("missing"|"no-command"|"ok", command). YAML errors count as no command (the worker warns)."""
    import yaml

    meta = find_metadata(folder)
    if meta is None:
        return "missing", None
    try:
        doc = yaml.load(meta.read_text(encoding="utf-8"), Loader=yaml.FullLoader)
    except (yaml.YAMLError, UnicodeDecodeError):
        return "no-command", None
    cmd = doc.get("command") if isinstance(doc, dict) else None
    if not cmd:
        return "no-command", None
    return "ok", str(cmd)


def substitute(command: str, *, kind: str, is_scoring: bool, ingestion_only_during_scoring: bool = False) -> str:
    """The worker's ``replace_legacy_metadata_command``: plain text replacement, longer names first."""
    table = [
        ("$input", "/app/input_data" if kind == "ingestion" else "/app/input"),
        ("$output", "/app/output"),
        ("$tmp", "/app/output"),
        ("$shared", "/app/shared"),
        ("$hidden", "/app/input/ref"),
        ("$submission_program", "/app/ingested_program"),
        ("$ingestion_program", "/app/program"),
        ("$program", "/app/ingestion_program" if (kind == "ingestion" and ingestion_only_during_scoring)
         else "/app/program"),
        ("$predictions", "/app/input/res" if is_scoring else "/app/output"),
    ]
    for var, value in table:
        command = command.replace(var, value)
    return command


_APP_RE = re.compile(r"/app/(ingested_program|input_data|program|output|shared|input|data)(?=/|$|[\s'\":=,])")


def map_paths(argv: List[str], mounts: Dict[str, Path]) -> List[str]:
    """Replace container paths (/app/program/...) in the arguments by the mounted host folders."""
    def repl(m):
        host = mounts.get("/app/" + m.group(1))
        return str(host) if host is not None else m.group(0)

    return [_APP_RE.sub(repl, a) for a in argv]


def map_config_paths(folder: Path, mounts: Dict[str, Path]) -> List[str]:
    """A local run cannot bind-mount: container paths in the program's ``config.yaml`` (its run copy)
    are mapped to the run folders like the command's (e.g. ``data_dir: /app/data``). Returns what changed."""
    cfg = folder / "config.yaml"
    if not cfg.is_file():
        return []
    text = cfg.read_text(encoding="utf-8")
    changed: List[str] = []

    def repl(m):
        host = mounts.get("/app/" + m.group(1))
        if host is None:
            return m.group(0)
        changed.append(f"/app/{m.group(1)} -> {host}")
        return str(host)

    new = _APP_RE.sub(repl, text)
    if new != text:
        cfg.write_text(new, encoding="utf-8")
    return sorted(set(changed))


def worker_env(*, gpu: bool, python_bin: Optional[Path] = None,
               base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of a local "container": the worker's variables, a few host basics, no
    PYTHONPATH or outer virtualenv, no user site-packages; the GPU hidden unless ``gpu``."""
    src = os.environ if base is None else base
    env = {k: v for k, v in src.items() if k in HOST_ENV_KEEP}
    env.update(WORKER_ENV)
    env["PYTHONNOUSERSITE"] = "1"  # as in a container: no user site-packages
    if python_bin is not None:  # `python3` on PATH is the image's, as in the image
        env["PATH"] = str(python_bin) + os.pathsep + env.get("PATH", "")
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a worker without USE_GPU passes no GPU into the container
    return env


def docker_args(*, image: str, mounts: Dict[str, Path], argv: List[str], name: str, network: bool = True,
                gpu: bool = False, read_only: Tuple[str, ...] = ("/app/data",)) -> List[str]:
    """The ``docker run`` command for one container, with the worker's mounts, environment and hardening."""
    args = ["docker", "run", "--rm", "--name", name, "-w", "/app/program"]
    for k, v in WORKER_ENV.items():
        args += ["-e", f"{k}={v}"]
    args += ["--security-opt", "no-new-privileges", "--userns", "host"]
    for cap in CAP_DROP:
        args += ["--cap-drop", cap]
    if not network:
        args += ["--network", "none"]
    if gpu:  # the worker's CDI device request with USE_GPU=true (needs `nvidia-ctk cdi generate`)
        args += ["--device", GPU_DEVICE]
    for target, host in sorted(mounts.items()):
        spec = f"{Path(host).resolve()}:{target}" + (":ro" if target in read_only else "")
        args += ["-v", spec]
    return args + [image] + list(argv)


def parse_scores(output: Path) -> Tuple[Optional[object], List[str]]:
    """The scoring output's scores as the worker reads them: scores.json with Python's ``json``
    (which accepts NaN and Infinity), else scores.txt as YAML. (None, [why]) when the worker fails
    the submission: no file, or a file it cannot decode."""
    sj, st = output / "scores.json", output / "scores.txt"
    if sj.is_file():
        try:
            return json.loads(sj.read_text(encoding="utf-8")), []
        except ValueError as exc:
            return None, [f"Could not decode scores json properly, it contains an error.\n{exc}"]
    if st.is_file():
        import yaml

        try:
            return yaml.load(st.read_text(encoding="utf-8"), Loader=yaml.FullLoader), []
        except yaml.YAMLError as exc:
            return None, [f"scores.txt is not YAML ({exc})"]
    return None, ["Could not find scores file, did the scoring program output it?"]


def _non_finite(value, path: str) -> List[str]:
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path} = {value!r}"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _non_finite(v, f"{path}[{i}]")]
    return []


def _decimal(value) -> Optional[float]:
    """What the server's DecimalField(20, 10) accepts: a finite number (or numeric string) below 1e10."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and abs(x) < 1e10 else None


def upload_scores(scores, columns: List[dict]) -> Tuple[Optional[Dict[str, float]], List[str]]:
    """What the leaderboard receives from the worker's score upload: ({column key: value}, []) or
    (None, [why the whole upload fails]). The worker has already set the status to Finished and does
    not check the upload, so a failure here means Finished with no scores."""
    if not isinstance(scores, dict):
        return None, [f"the scores are a {type(scores).__name__}, not a flat mapping {{column_key: number}}: the "
                      "server cannot read them"]
    bad = _non_finite(scores, "")
    if bad:
        return None, [f"{', '.join(bad[:5])}: NaN and Infinity are not valid JSON, so the upload of the scores is "
                      "rejected as a whole"]
    keys = {c.get("key") for c in columns if isinstance(c, dict)}
    posted: Dict[str, float] = {}
    refused = []
    for k, v in scores.items():
        if k not in keys:
            continue  # the server skips keys without a column
        x = _decimal(v)
        if x is None:
            refused.append(f"{k} = {v!r}")
        else:
            posted[k] = x
    if refused:
        return None, [f"{', '.join(refused[:5])}: not a number below 1e10 for a leaderboard column, so the upload "
                      "of the scores fails"]
    return posted, []


def scored_message(rule: Optional[str]) -> str:
    """What a Finished submission with scores means for the leaderboard under its rule (codabench.md §1.6)."""
    rule = rule or "Add"
    if rule.startswith("Add"):
        return (f"Finished with scores; nothing is posted automatically ({rule}): add the submission to the "
                "leaderboard on My Submissions to show this row")
    return {"Force_Last": "Finished with scores; posted to the leaderboard, replacing your previous entry (Force_Last)",
            "Force_Latest_Multiple": "Finished with scores; posted to the leaderboard (Force_Latest_Multiple)",
            "Force_Best": "Finished with scores; shown on the leaderboard if it is your best submission (Force_Best)",
            }.get(rule, f"Finished with scores (leaderboard rule {rule})")


def match_columns(scores: dict, columns: List[dict]) -> Tuple[List[Tuple[str, str, Optional[float], int]], List[str],
                                                              List[str]]:
    """(row [(title, key, value or None, precision)], keys without column (dropped), columns without key (n/a))."""
    keys = {c.get("key") for c in columns}
    computed = {c.get("key") for c in columns if c.get("computation")}
    row = []
    missing = []
    by_index = {c.get("index"): c for c in columns}
    for c in sorted(columns, key=lambda c: c.get("index", 0)):
        k = c.get("key")
        if c.get("computation"):
            vals = [scores.get(by_index[i].get("key")) for i in c.get("computation_indexes") or [] if i in by_index]
            vals = [v for v in vals if isinstance(v, (int, float))]
            fn = {"avg": lambda x: sum(x) / len(x), "sum": sum, "min": min, "max": max}.get(c["computation"])
            value = fn(vals) if vals and fn else None
        else:
            value = scores.get(k)
            if value is None:
                missing.append(k)
        row.append((c.get("title"), k, value, int(c.get("precision", 2))))
    dropped = [k for k in scores if k not in keys or k in computed]
    return row, dropped, missing
