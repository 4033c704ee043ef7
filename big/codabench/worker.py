"""``big run-local``: run a submission through a bundle the way CodaBench's compute worker does.

Emulates ``compute_worker.py`` (reference codabench.md §2) on this machine: a prediction job, then a
scoring job, each in its own run folder with the worker's layout::

    prediction/  program/ (the unzipped submission)  ingestion_program/  input_data/  output/
    scoring/     program/ (scoring program)  input/ref/  input/res/ (= prediction output)  shared/  output/
    logs/        prediction_stdout ... scoring_stderr (the worker's log names)

and the worker's rules: ``metadata.yaml`` then ``metadata`` at the program root; a submission
without one is *copied* into the output (result zips and code zips alike) and nothing runs for it;
the ingestion program runs beside it with the submission at /app/ingested_program; ``$placeholders``
replaced as plain text; commands split like docker-py (no shell); the ingestion exit code ignored;
the worker's own ``metadata`` file (exitCode, elapsedTime, ingestionExitCode, ingestionElapsedTime)
written into the prediction output before scoring (a program that wrote one fails the job); the
scoring exit code decides Failed/Finished; scores.json (else scores.txt as YAML) parsed strictly and
matched to the leaderboard columns by key.

Without ``--docker`` the commands run on this machine: container paths (/app/...) in the command are
mapped to the run folders and ``python``/``python3`` is this interpreter (or ``--python``). With
``--docker`` each job runs in the competition's docker_image with the worker's mounts.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

from ..errors import Problem, UsageError

PathLike = Union[str, os.PathLike]
#: capabilities the worker drops (compute_worker.py)
CAP_DROP = ("AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
            "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT")
METADATA_EXISTS = ("Error, the output directory already contains a metadata file. This file is used to store "
                   "exitCode and other data, do not write to this file manually.")


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


def docker_args(*, image: str, mounts: Dict[str, Path], argv: List[str], name: str, network: bool = True,
                gpu: bool = False, read_only: Tuple[str, ...] = ("/app/data",)) -> List[str]:
    """The ``docker run`` command for one container, with the worker's mounts and hardening."""
    args = ["docker", "run", "--rm", "--name", name, "-w", "/app/program", "-e", "PYTHONUNBUFFERED=1",
            "--security-opt", "no-new-privileges", "--userns", "host"]
    for cap in CAP_DROP:
        args += ["--cap-drop", cap]
    if not network:
        args += ["--network", "none"]
    if gpu:
        args += ["--gpus", "all"]
    for target, host in sorted(mounts.items()):
        spec = f"{Path(host).resolve()}:{target}" + (":ro" if target in read_only else "")
        args += ["-v", spec]
    return args + [image] + list(argv)


def parse_scores(output: Path) -> Tuple[Optional[dict], List[str]]:
    """scores.json (strict JSON) or scores.txt (YAML) from the scoring output: (scores, problems)."""
    sj, st = output / "scores.json", output / "scores.txt"
    if sj.is_file():
        def bad_constant(c):
            raise ValueError(f"{c} is not valid JSON")

        try:
            doc = json.loads(sj.read_text(encoding="utf-8"), parse_constant=bad_constant)
        except ValueError as exc:
            return None, [f"scores.json: could not decode the JSON ({exc}); the worker fails the submission"]
        src = "scores.json"
    elif st.is_file():
        import yaml

        try:
            doc = yaml.safe_load(st.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            return None, [f"scores.txt is not YAML ({exc})"]
        src = "scores.txt"
    else:
        return None, ["Could not find scores file, did the scoring program output it?"]
    if not isinstance(doc, dict):
        return None, [f"{src} must hold a flat mapping {{column_key: number}}, found {type(doc).__name__}"]
    problems = []
    for k, v in doc.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            problems.append(f"{src}: {k} = {v!r} is not a number (the score upload would fail: n/a)")
        elif not math.isfinite(v) or abs(v) >= 1e10:
            problems.append(f"{src}: {k} = {v!r} is not a finite number below 1e10 (the score upload would fail)")
    return doc, problems


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


# ---------------------------------------------------------------------------------------------
# running jobs
# ---------------------------------------------------------------------------------------------

@dataclass
class RunLocalOptions:
    bundle: PathLike
    submission: PathLike
    phase: str = "development"
    work_dir: Optional[PathLike] = None
    python: str = sys.executable
    docker: bool = False
    network: bool = True
    gpu: bool = False
    time_limit: Optional[int] = None  # override the phase's execution_time_limit


@dataclass
class Container:
    label: str  # prediction | prediction_ingestion | scoring
    argv: List[str]
    cwd: Path
    mounts: Dict[str, Path]
    exit_code: Optional[int] = None
    elapsed: Optional[float] = None
    proc: Optional[subprocess.Popen] = None
    t0: float = 0.0
    files: tuple = ()


@dataclass
class RunResult:
    status: str  # Finished | Failed
    message: str
    phase: str
    task: str
    scores: Optional[dict] = None
    row: List[Tuple[str, str, Optional[float], int]] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    work_dir: Optional[Path] = None
    logs: Optional[Path] = None
    prediction_output: Optional[Path] = None
    scoring_output: Optional[Path] = None
    detailed_results: Optional[Path] = None
    commands: List[List[str]] = field(default_factory=list)
    metadata: Optional[dict] = None

    def row_text(self) -> str:
        return " | ".join(f"{t}: {'n/a' if v is None else f'{v:.{p}f}'}" for t, _, v, p in self.row)


def _extract(src: Path, dest: Path) -> Path:
    """A bundle path (folder or zip) as a folder at ``dest`` (zips unpacked, folders copied)."""
    if src.is_dir():
        shutil.copytree(src, dest, symlinks=False)
    else:
        with zipfile.ZipFile(src) as zf:
            for name in zf.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise UsageError([Problem(f"unsafe path {name!r} in the zip", file=str(src))])
            dest.mkdir(parents=True)
            zf.extractall(dest)
    return dest


class Worker:
    def __init__(self, options: RunLocalOptions, *, log: Callable[[str], None] = print):
        self.o = options
        self.log = log

    # -- setup ---------------------------------------------------------------------------
    def _load_bundle(self, work: Path) -> Tuple[Path, dict]:
        import yaml

        b = Path(self.o.bundle)
        if b.is_dir():
            root = b
        elif b.is_file() and zipfile.is_zipfile(b):
            with zipfile.ZipFile(b) as zf:
                if "competition.yaml" not in zf.namelist():
                    raise UsageError([Problem("competition.yaml is not at the zip root (CodaBench: "
                                              "'competition.yaml is missing from zip')", file=str(b))])
            root = _extract(b, work / "bundle")
        else:
            raise UsageError([Problem("not a bundle zip or folder", file=str(b))])
        comp = root / "competition.yaml"
        if not comp.is_file():
            raise UsageError([Problem("no competition.yaml at the bundle root", file=str(b))])
        doc = yaml.safe_load(comp.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise UsageError([Problem("competition.yaml is not a mapping", file=str(comp))])
        return root, doc

    def _phase(self, doc: dict) -> Tuple[dict, dict]:
        phases = sorted([p for p in doc.get("phases") or [] if isinstance(p, dict)], key=lambda p: p.get("index", 0))
        if not phases:
            raise UsageError([Problem("the bundle has no phases", file="competition.yaml")])
        want = str(self.o.phase).strip().lower()
        phase = next((p for p in phases if str(p.get("name", "")).lower() == want), None)
        if phase is None and want.isdigit() and int(want) < len(phases):
            phase = phases[int(want)]
        if phase is None and want in ("development", "dev"):
            phase = phases[0]
        if phase is None and want in ("test", "final"):
            phase = phases[-1]
        if phase is None:
            names = ", ".join(str(p.get("name")) for p in phases)
            raise UsageError([Problem(f"no phase {self.o.phase!r}; the phases are {names}")])
        tasks = {t.get("index"): t for t in doc.get("tasks") or [] if isinstance(t, dict)}
        indexes = phase.get("tasks") or []
        if not indexes or indexes[0] not in tasks:
            raise UsageError([Problem(f"phase {phase.get('name')!r} has no valid task", file="competition.yaml")])
        if len(indexes) > 1:
            self.log(f"note: phase {phase.get('name')!r} has {len(indexes)} tasks; running the first "
                     "(CodaBench would run one child submission per task)")
        return phase, tasks[indexes[0]]

    # -- containers ----------------------------------------------------------------------
    def _container(self, label: str, command: str, mounts: Dict[str, Path], image: str) -> Container:
        argv = shlex.split(command)
        if self.o.docker:
            name = f"big-run-local-{label}-{os.getpid()}-{int(time.time())}"
            full = docker_args(image=image, mounts=mounts, argv=argv, name=name, network=self.o.network, gpu=self.o.gpu)
            return Container(label, full, mounts["/app/program"], mounts)
        argv = map_paths(argv, mounts)
        if argv and re.fullmatch(r"python(3(\.\d+)?)?", Path(argv[0]).name):
            argv[0] = self.o.python
        return Container(label, argv, mounts["/app/program"], mounts)

    def _start(self, c: Container, logs: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONNOUSERSITE"] = "1"  # as in a container: no user site-packages
        out = open(logs / f"{c.label}_stdout", "wb")
        err = open(logs / f"{c.label}_stderr", "wb")
        c.files = (out, err)
        c.t0 = time.perf_counter()
        try:
            c.proc = subprocess.Popen(c.argv, cwd=str(c.cwd), stdout=out, stderr=err, env=env,
                                      start_new_session=True)
        except OSError as exc:
            err.write(f"could not start {c.argv[0]!r}: {exc}\n".encode())
            c.exit_code, c.elapsed = 127, 0.0

    def _wait(self, containers: List[Container], limit: int) -> bool:
        """Wait for all; kill everything at the time limit. True when the limit was exceeded."""
        deadline = time.perf_counter() + limit
        timed_out = False
        for c in containers:
            if c.proc is None:
                continue
            try:
                c.exit_code = c.proc.wait(timeout=max(deadline - time.perf_counter(), 0.01))
            except subprocess.TimeoutExpired:
                timed_out = True
                break
            c.elapsed = time.perf_counter() - c.t0
        if timed_out:
            for c in containers:
                if c.proc is not None and c.proc.poll() is None:
                    try:
                        os.killpg(c.proc.pid, 9)
                    except (ProcessLookupError, PermissionError):
                        c.proc.kill()
                    c.proc.wait()
                    c.elapsed = time.perf_counter() - c.t0
        for c in containers:
            for fh in c.files:
                fh.close()
        return timed_out

    # -- the two jobs --------------------------------------------------------------------
    def run(self) -> RunResult:
        o = self.o
        if o.docker and shutil.which("docker") is None:
            raise UsageError([Problem("--docker: no docker command on this machine (run without --docker to use "
                                      "this interpreter instead)")])
        sub = Path(o.submission)
        if not sub.is_file() or not zipfile.is_zipfile(sub):
            raise UsageError([Problem("a submission is a .zip file (CodaBench's upload form accepts only zips)",
                                      file=str(sub))])
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        work = (Path(o.work_dir) if o.work_dir else Path(tempfile.mkdtemp(prefix=f"big-run-local-{stamp}-"))).resolve()
        if work.exists() and any(work.iterdir()):
            raise UsageError([Problem("the work folder exists and is not empty", file=str(work))])
        work.mkdir(parents=True, exist_ok=True)
        root, doc = self._load_bundle(work)
        phase, task = self._phase(doc)
        limit = int(o.time_limit or phase.get("execution_time_limit") or 600)
        image = str(doc.get("docker_image") or "codalab/codalab-legacy:py37")
        logs = work / "logs"
        logs.mkdir()
        res = RunResult(status="Failed", message="", phase=str(phase.get("name")), task=str(task.get("name")),
                        work_dir=work, logs=logs)
        self.log(f"run-local: phase {res.phase!r}, task {res.task!r}, execution_time_limit {limit} s, "
                 f"{'docker image ' + image if o.docker else 'local interpreter ' + o.python}")

        def bundle_path(key: str) -> Optional[Path]:
            ref = task.get(key)
            if ref is None:
                return None
            p = root / ref
            if not p.exists():
                raise UsageError([Problem(f"task {key} {ref!r} does not exist in the bundle")])
            return p

        # ---- prediction job ----
        pred = work / "prediction"
        pred.mkdir()
        program = _extract(sub, pred / "program")
        output = pred / "output"
        output.mkdir()
        ingestion_src = bundle_path("ingestion_program")
        input_src = bundle_path("input_data")
        only_scoring = bool(task.get("ingestion_only_during_scoring"))
        input_data = None
        if input_src is not None:
            input_data = pred / "input_data"
            if input_src.is_dir():
                os.symlink(input_src.resolve(), input_data)  # the worker's cache: read, never copied per run
            else:
                _extract(input_src, input_data)
        containers: List[Container] = []
        state, cmd = read_command(program)
        if state == "missing":
            shutil.copytree(program, output, dirs_exist_ok=True)
            self.log("prediction: the submission has no metadata file: its files were copied into the output")
        elif state == "no-command":
            self.log("prediction: the submission's metadata has no command: nothing runs and nothing is copied")
        else:
            mounts = {"/app/program": program, "/app/output": output}
            if input_data is not None:
                mounts["/app/input_data"] = input_data
            containers.append(self._container("prediction", substitute(cmd, kind="program", is_scoring=False),
                                              mounts, image))
            self.log(f"prediction: the submission runs its own command {cmd!r}")
        ingestion_dir = None
        if ingestion_src is not None and not only_scoring:
            ingestion_dir = _extract(ingestion_src, pred / "ingestion_program")
            istate, icmd = read_command(ingestion_dir)
            if istate == "ok":
                mounts = {"/app/program": ingestion_dir, "/app/output": output, "/app/ingested_program": program}
                if input_data is not None:
                    mounts["/app/input_data"] = input_data
                containers.append(self._container("prediction_ingestion",
                                                  substitute(icmd, kind="ingestion", is_scoring=False), mounts, image))
            else:
                msg = ("Program directory missing 'metadata.yaml/metadata'" if istate == "missing"
                       else "Program directory missing 'command' in metadata")
                (logs / "prediction_ingestion_stderr").write_text(msg + "\n")
                self.log(f"prediction: ingestion program: {msg} (swallowed by the worker)")
        for c in containers:
            res.commands.append(c.argv)
            self._start(c, logs)
        timed_out = self._wait(containers, limit)
        by = {c.label: c for c in containers}
        if timed_out:
            res.message = f"Execution Time Limit exceeded. Limit was {limit} seconds"
            self._append(logs / "prediction_ingestion_stderr", res.message)
            return self._finish(res, pred_out=output)
        # the worker's metadata file, written into the prediction output before it is uploaded
        if (output / "metadata").exists():
            res.message = METADATA_EXISTS
            return self._finish(res, pred_out=output)
        prog, ing = by.get("prediction"), by.get("prediction_ingestion")
        meta = {
            "exitCode": prog.exit_code if prog else None,
            "elapsedTime": _round(prog.elapsed if prog else (ing.elapsed if ing else None)),
            "ingestionExitCode": ing.exit_code if ing else None,
            "ingestionElapsedTime": _round(ing.elapsed if ing else None),
        }
        import yaml

        (output / "metadata").write_text(yaml.dump(meta, default_flow_style=False), encoding="utf-8")
        res.metadata = meta
        if ing is not None:
            self.log(f"prediction: ingestion exit code {ing.exit_code} ({meta['ingestionElapsedTime']} s) — "
                     "ignored by the worker")
        if prog is not None:
            self.log(f"prediction: submission exit code {prog.exit_code} — ignored by the worker")

        # ---- scoring job ----
        sc = work / "scoring"
        (sc / "input").mkdir(parents=True)
        scoring_src = bundle_path("scoring_program")
        if scoring_src is None:
            raise UsageError([Problem(f"task {res.task!r} has no scoring_program", file="competition.yaml")])
        sprog = _extract(scoring_src, sc / "program")
        shutil.copytree(output, sc / "input" / "res")
        ref_src = bundle_path("reference_data")
        if ref_src is not None:
            _extract(ref_src, sc / "input" / "ref")
        (sc / "shared").mkdir()
        sout = sc / "output"
        sout.mkdir()
        sstate, scmd = read_command(sprog)
        containers = []
        if sstate == "missing":
            shutil.copytree(sprog, sout, dirs_exist_ok=True)
            self.log("scoring: the scoring program has no metadata file: copied into the output, nothing ran")
        elif sstate == "no-command":
            self.log("scoring: the scoring program's metadata has no command: nothing ran")
        else:
            mounts = {"/app/program": sprog, "/app/output": sout, "/app/input": sc / "input", "/app/shared": sc / "shared"}
            containers.append(self._container("scoring", substitute(scmd, kind="program", is_scoring=True), mounts, image))
        if ingestion_src is not None and only_scoring:
            idir = _extract(ingestion_src, sc / "ingestion_program")
            istate, icmd = read_command(idir)
            if istate == "ok":
                mounts = {"/app/program": idir, "/app/output": sout, "/app/input": sc / "input",
                          "/app/shared": sc / "shared", "/app/ingested_program": sc / "input" / "res"}
                if input_data is not None:
                    mounts["/app/input_data"] = input_data
                containers.append(self._container("scoring_ingestion", substitute(
                    icmd, kind="ingestion", is_scoring=True, ingestion_only_during_scoring=True), mounts, image))
        for c in containers:
            res.commands.append(c.argv)
            self._start(c, logs)
        timed_out = self._wait(containers, limit)
        scoring = next((c for c in containers if c.label == "scoring"), None)
        if timed_out:
            res.message = f"Execution Time Limit exceeded. Limit was {limit} seconds"
            self._append(logs / "scoring_stderr", res.message)
            return self._finish(res, pred_out=output, score_out=sout)
        if scoring is not None and scoring.exit_code not in (0, None):
            res.message = f"the scoring program exited with code {scoring.exit_code}"
            tail = _tail(logs / "scoring_stderr")
            if tail:
                res.message += ": " + tail
            return self._finish(res, pred_out=output, score_out=sout)
        res.status = "Finished"
        scores, problems = parse_scores(sout)
        if scores is None:
            res.status = "Failed"
            res.message = problems[0]
            return self._finish(res, pred_out=output, score_out=sout)
        res.scores, res.problems = scores, problems
        columns = ((doc.get("leaderboards") or [{}])[0] or {}).get("columns") or []
        res.row, res.dropped, res.missing = match_columns(scores, columns)
        if (sout / "metadata").exists():
            res.problems.append("the scoring program wrote output/metadata: " + METADATA_EXISTS)
        smeta = {"exitCode": scoring.exit_code if scoring else None,
                 "elapsedTime": _round(scoring.elapsed if scoring else None),
                 "ingestionExitCode": None, "ingestionElapsedTime": None}
        if not (sout / "metadata").exists():
            (sout / "metadata").write_text(yaml.dump(smeta, default_flow_style=False), encoding="utf-8")
        html = sout / "detailed_results.html"
        if not html.is_file():
            found = sorted(sout.glob("*.html"))
            html = found[0] if found else None
        res.detailed_results = html if (html and doc.get("enable_detailed_results")) else None
        res.message = "scores posted to the leaderboard" if not (res.problems or res.missing) else \
            "Finished, but the leaderboard would show n/a for some columns"
        return self._finish(res, pred_out=output, score_out=sout)

    @staticmethod
    def _append(path: Path, text: str) -> None:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")

    def _finish(self, res: RunResult, *, pred_out: Path, score_out: Optional[Path] = None) -> RunResult:
        res.prediction_output = pred_out
        res.scoring_output = score_out
        return res


def _round(x: Optional[float]) -> Optional[float]:
    return None if x is None else round(float(x), 3)


def _tail(path: Path, n: int = 1) -> str:
    if not path.is_file():
        return ""
    lines = [l for l in path.read_text(encoding="utf-8", errors="replace").splitlines() if l.strip()]
    return " / ".join(lines[-n:])


def run_local(options: RunLocalOptions, *, log: Callable[[str], None] = print) -> RunResult:
    return Worker(options, log=log).run()


def print_result(res: RunResult, log: Callable[[str], None] = print) -> None:
    log(f"status: {res.status} — {res.message}")
    if res.row:
        log("leaderboard row:")
        head = [r for r in res.row if "_" not in r[1]]
        log("  " + " | ".join(f"{t}: {'n/a' if v is None else f'{v:.{p}f}'}" for t, _, v, p in head))
        per = {}
        for t, k, v, p in res.row:
            if "_" in k:
                flag, m = k.rsplit("_", 1)
                per.setdefault(flag, {})[m] = "n/a" if v is None else f"{v:.{p}f}"
        if per:
            metrics_ = sorted({m for d in per.values() for m in d}, key=["auc", "balacc", "kappa"].index
                              if all(m in ("auc", "balacc", "kappa") for d in per.values() for m in d) else str)
            log("  " + f"{'dataset':<16}" + "".join(f"{m:>9}" for m in metrics_))
            for flag, d in per.items():
                log("  " + f"{flag:<16}" + "".join(f"{d.get(m, 'n/a'):>9}" for m in metrics_))
    for p in res.problems:
        log(f"problem: {p}")
    if res.dropped:
        log(f"ignored by the leaderboard (no column with that key): {', '.join(res.dropped)}")
    if res.missing:
        log(f"n/a on the leaderboard (not in the scores): {', '.join(res.missing)}")
    log(f"logs: {res.logs}")
    if res.prediction_output:
        log(f"prediction output: {res.prediction_output}")
    if res.scoring_output:
        log(f"scoring output: {res.scoring_output}")
    if res.detailed_results:
        log(f"detailed results: {res.detailed_results}")
