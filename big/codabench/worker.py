"""``big run-local``: run a submission through a bundle the way CodaBench's compute worker does.

Emulates ``compute_worker.py`` (reference codabench.md §2) on this machine: a prediction job, then a
scoring job, each in its own run folder with the worker's layout::

    prediction/  program/ (the unzipped submission)  ingestion_program/  input_data/  output/
    scoring/     program/ (scoring program)  input/ref/  input/res/ (= prediction output)  shared/  output/
    app_data/    the worker's read-only /app/data (empty, or --data-dir)
    logs/        prediction_stdout ... scoring_stderr (the worker's log names)

and the worker's rules: ``metadata.yaml`` then ``metadata`` at the program root; a submission
without one is *copied* into the output (result zips and code zips alike) and nothing runs for it;
the ingestion program runs beside it with the submission at /app/ingested_program; ``$placeholders``
replaced as plain text; commands split like docker-py (no shell); every container gets /app/data
and the worker's environment (PYTHONUNBUFFERED=1, empty http_proxy/https_proxy) and a GPU only
when the worker runs with USE_GPU (``--gpus``); the ingestion exit code ignored; the worker's own
``metadata`` file (exitCode, elapsedTime, ingestionExitCode, ingestionElapsedTime) written into the
prediction output before scoring (a program that wrote one fails the job); the scoring exit code
decides Failed/Finished; scores.json read with Python's json (NaN accepted, as the worker does) or
scores.txt as YAML; the upload of the scores can still fail (NaN, non-numbers, huge values), which
leaves the submission Finished with no scores; scores matched to the leaderboard columns by key.

Time: each job runs for the effective limit min(cap, execution_time_limit) (big.limits; the cap is
read back from the bundle's ingestion config). At that limit the real worker is unreliable: it
either kills the job ("Execution Time Limit exceeded. Limit was N seconds", Failed) or lets it run on
to the end; ``past_limit`` chooses which of the two is emulated, and the result says so. The
ingestion program's own budget is meant to end the job first; ``time_limit`` lowers that budget
with it, or refuses when the limit leaves the program no time.

Without ``--docker`` the commands run on this machine: container paths (/app/...) in the command and
in a program's ``config.yaml`` are mapped to the run folders, and ``python``/``python3`` is the image's
venv Python with ``--image`` (big.imageenv), else this interpreter (or ``--python``). With ``--docker``
each job runs in the competition's docker_image with the worker's mounts.

The worker's small rules are pure functions in :mod:`big.codabench.jobrules`; this module runs jobs.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
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

from .. import limits
from ..errors import Problem, UsageError
from .jobrules import (GPU_DEVICE, METADATA_EXISTS, PAST_LIMIT, TIME_LIMIT_MESSAGE, WORKER_ENV, docker_args,
                       map_config_paths, map_paths, match_columns, parse_scores, read_command, scored_message,
                       substitute, upload_scores, worker_env)

PathLike = Union[str, os.PathLike]

# ---------------------------------------------------------------------------------------------
# running jobs
# ---------------------------------------------------------------------------------------------

@dataclass
class RunLocalOptions:
    bundle: PathLike
    submission: PathLike
    phase: str = "development"
    work_dir: Optional[PathLike] = None
    python: Optional[str] = None  # interpreter for `python3` in the commands (default: this one)
    image: Optional[str] = None  # run with this image's venv (big.imageenv); "auto": the bundle's docker_image
    venv: Optional[PathLike] = None  # that venv's folder (default .venv-IMAGE beside the big package)
    docker: bool = False
    network: bool = True
    gpu: bool = False  # pass the GPUs, as a worker started with USE_GPU=true does
    time_limit: Optional[int] = None  # replaces the phase's execution_time_limit (the cap still applies)
    data_dir: Optional[PathLike] = None  # the worker host's data folder, at /app/data (default: an empty one)
    past_limit: str = "kill"  # at the worker's limit: "kill" (Failed) or "run-on"; CodaBench does either


@dataclass
class Container:
    label: str  # prediction | prediction_ingestion | scoring | scoring_ingestion
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
    scores: Optional[dict] = None  # what reached the leaderboard ({column key: value}); None: nothing
    row: List[Tuple[str, str, Optional[float], int]] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # what the emulator did differently from a bare run
    work_dir: Optional[Path] = None
    logs: Optional[Path] = None
    prediction_output: Optional[Path] = None
    scoring_output: Optional[Path] = None
    detailed_results: Optional[Path] = None
    commands: List[List[str]] = field(default_factory=list)
    metadata: Optional[dict] = None
    python: Optional[str] = None  # the interpreter of the jobs (None under --docker)
    environment: str = ""  # which Python and packages ran the programs
    limit: Optional[int] = None  # the effective limit of each job
    budget: Optional[float] = None  # the ingestion program's budget in this run

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


def _program_config(src: Optional[Path]) -> Optional[dict]:
    """``config.yaml`` at the root of a bundle program (folder or zip), as a mapping."""
    import yaml

    if src is None:
        return None
    try:
        if src.is_dir():
            text = (src / "config.yaml").read_text(encoding="utf-8") if (src / "config.yaml").is_file() else None
        else:
            with zipfile.ZipFile(src) as zf:
                text = zf.read("config.yaml").decode("utf-8") if "config.yaml" in zf.namelist() else None
        doc = yaml.safe_load(text) if text else None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, yaml.YAMLError):
        return None
    return doc if isinstance(doc, dict) else None


def _number(v) -> Optional[float]:
    return None if isinstance(v, bool) or not isinstance(v, (int, float)) else float(v)


class Worker:
    def __init__(self, options: RunLocalOptions, *, log: Callable[[str], None] = print):
        self.o = options
        self.log = log
        self.python: str = options.python or sys.executable
        self.env: Optional[Dict[str, str]] = None

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

    def _interpreter(self, image_ref: str) -> Tuple[Optional[Path], str]:
        """Set ``self.python`` for a local run; returns (the venv's bin folder or None, a description)."""
        o = self.o
        if o.docker:
            return None, f"docker image {image_ref}"
        from .. import imageenv

        if o.image:
            env = imageenv.ensure(image_ref if o.image == "auto" else o.image, o.venv, log=self.log)
            self.python = str(env.python)
            try:
                same = imageenv.lookup(image_ref).name == env.image.name
            except UsageError:
                same = False
            if not same:
                self.log(f"note: the bundle's docker_image is {image_ref}; the programs run with image "
                         f"{env.image.name}'s Python and pins")
            return env.venv / "bin", f"image {env.image.name} ({env.image.ref}): {env.python} — {env.describe()}"
        version = platform.python_version() if self.python == sys.executable else imageenv.python_version(self.python)
        try:
            hint = f"--image {imageenv.lookup(image_ref).name}"
        except UsageError:
            hint = "--image IMAGE"
        return None, (f"this machine's interpreter {self.python} (Python {version}), not {image_ref}'s Python and "
                      f"packages ({hint} runs them as the worker would)")

    def _cap(self, doc: dict, ingestion_cfg: Optional[dict]) -> Optional[int]:
        from .lint import resolve_cap

        recorded = [ingestion_cfg["platform_cap_s"]] if ingestion_cfg and "platform_cap_s" in ingestion_cfg else []
        cap, finding = resolve_cap(doc.get("queue"), recorded)
        if finding is not None:
            self.log(f"note: {finding.message}")
        return cap

    # -- containers ----------------------------------------------------------------------
    def _container(self, label: str, command: str, mounts: Dict[str, Path], image: str) -> Container:
        argv = shlex.split(command)
        if self.o.docker:
            name = f"big-run-local-{label}-{os.getpid()}-{int(time.time())}"
            full = docker_args(image=image, mounts=mounts, argv=argv, name=name, network=self.o.network, gpu=self.o.gpu)
            return Container(label, full, mounts["/app/program"], mounts)
        argv = map_paths(argv, mounts)
        if argv and re.fullmatch(r"python(3(\.\d+)?)?", Path(argv[0]).name):
            argv[0] = self.python
        return Container(label, argv, mounts["/app/program"], mounts)

    def _start(self, c: Container, logs: Path) -> None:
        # the docker client runs in this shell's environment; a local job in the worker's
        env = dict(os.environ) if self.o.docker else (self.env or worker_env(gpu=self.o.gpu))
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

    def _wait(self, containers: List[Container], limit: int) -> str:
        """Wait for all containers. At the worker's limit: "killed" (everything stopped) or, with
        past_limit run-on, wait on to the end ("ran-on"); "ok" when all ended within the limit."""
        deadline = time.perf_counter() + limit
        outcome = "ok"
        for c in containers:
            if c.proc is None:
                continue
            try:
                c.exit_code = c.proc.wait(timeout=max(deadline - time.perf_counter(), 0.01))
            except subprocess.TimeoutExpired:
                if self.o.past_limit == "run-on":
                    outcome = "ran-on"
                    c.exit_code = c.proc.wait()
                else:
                    outcome = "killed"
                    break
            c.elapsed = time.perf_counter() - c.t0
        if outcome == "killed":
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
        return outcome

    def _past_limit(self, res: RunResult, job: str, outcome: str, limit: int, logs: Path, log_name: str) -> bool:
        """The worker's limit was reached. Returns True when the job is over (killed)."""
        if outcome == "killed":
            res.message = TIME_LIMIT_MESSAGE.format(limit=limit)
            self._append(logs / log_name, res.message)
            note = (f"the {job} job reached the worker's limit ({limit} s). CodaBench's worker is unreliable here: it "
                    "kills the job with only this message (emulated: --past-limit kill) or lets it run on to the end "
                    "(--past-limit run-on). The ingestion program's budget should end a job first: see `big lint`.")
            res.notes.append(note)
            return True
        if outcome == "ran-on":
            res.problems.append(f"the {job} job ran past the worker's limit of {limit} s (emulated: --past-limit "
                                "run-on, as CodaBench's worker often does; it may also kill the job with \""
                                + TIME_LIMIT_MESSAGE.format(limit=limit) + "\")")
        return False

    # -- the two jobs --------------------------------------------------------------------
    def run(self) -> RunResult:
        o = self.o
        if o.past_limit not in PAST_LIMIT:
            raise UsageError([Problem(f"--past-limit {o.past_limit!r}: expected {' or '.join(PAST_LIMIT)}")])
        if o.docker and (o.image or o.python):
            raise UsageError([Problem("--docker runs the bundle's docker_image itself; --image and --python are for "
                                      "runs on this machine")])
        if o.image and o.python:
            raise UsageError([Problem("give --image (the image's venv) or --python, not both")])
        if o.docker and shutil.which("docker") is None:
            raise UsageError([Problem("--docker: no docker command on this machine (run without --docker to use "
                                      "this interpreter instead)")])
        sub = Path(o.submission)
        if not sub.is_file() or not zipfile.is_zipfile(sub):
            raise UsageError([Problem("a submission is a .zip file (CodaBench's upload form accepts only zips)",
                                      file=str(sub))])
        if o.data_dir is not None and not Path(o.data_dir).is_dir():
            raise UsageError([Problem("--data-dir is not a folder", file=str(o.data_dir))])
        if o.time_limit is not None and int(o.time_limit) <= 0:
            raise UsageError([Problem(f"--time-limit {o.time_limit}: expected seconds > 0")])
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        work = (Path(o.work_dir) if o.work_dir else Path(tempfile.mkdtemp(prefix=f"big-run-local-{stamp}-"))).resolve()
        if work.exists() and any(work.iterdir()):
            raise UsageError([Problem("the work folder exists and is not empty", file=str(work))])
        work.mkdir(parents=True, exist_ok=True)
        root, doc = self._load_bundle(work)
        phase, task = self._phase(doc)
        image = str(doc.get("docker_image") or "codalab/codalab-legacy:py37")

        def bundle_path(key: str) -> Optional[Path]:
            ref = task.get(key)
            if ref is None:
                return None
            p = root / ref
            if not p.exists():
                raise UsageError([Problem(f"task {key} {ref!r} does not exist in the bundle")])
            return p

        ingestion_src = bundle_path("ingestion_program")
        only_scoring = bool(task.get("ingestion_only_during_scoring"))
        icfg = _program_config(ingestion_src)

        # ---- time: the effective limit, and the ingestion budget under it ----
        cap = self._cap(doc, icfg)
        asked = int(o.time_limit) if o.time_limit is not None else phase.get("execution_time_limit")
        limit = limits.effective_limit(asked, cap)
        budget = _number((icfg or {}).get("time_budget_s"))
        lowered = None
        if o.time_limit is not None and budget is not None:
            stop = _number((icfg or {}).get("stop_margin_s"))
            stop = 15.0 if stop is None else stop
            derived = limits.time_budget(limit)
            if derived <= stop:
                raise UsageError([Problem(
                    f"--time-limit {o.time_limit}: the ingestion program's budget would be {derived} s ({limit} s minus "
                    f"{limits.margin_rule()} kept for starting the container and writing the results), but it stops "
                    f"the model {stop:g} s before its budget, so the model would get no time (on CodaBench a limit this "
                    f"short fails every code submission too). Give at least {limits.min_limit(stop)} s, or try a budget alone with "
                    "`big ingest --time-budget SECONDS`.")],
                    summary=f"--time-limit {o.time_limit} leaves the ingestion program no time "
                            f"(at least {limits.min_limit(stop)} s)")
            if derived < budget:
                lowered, budget = derived, float(derived)
        how = (f"--time-limit {o.time_limit} s, the phase asks {phase.get('execution_time_limit')} s"
               if o.time_limit is not None else f"execution_time_limit {asked if asked is not None else 'unset: 600'} s")
        self.log(f"run-local: phase {phase.get('name')!r}, task {task.get('name')!r}; each job may run {limit} s "
                 + (f"= min(cap {cap} s, {how})" if cap is not None else f"({how}; own queue, no cap)"))

        logs = work / "logs"
        logs.mkdir()
        res = RunResult(status="Failed", message="", phase=str(phase.get("name")), task=str(task.get("name")),
                        work_dir=work, logs=logs, limit=limit, budget=budget)
        python_bin, res.environment = self._interpreter(image)
        res.python = None if o.docker else self.python
        self.log(f"programs run with {res.environment}")
        self.env = None if o.docker else worker_env(gpu=o.gpu, python_bin=python_bin)
        if o.gpu:
            self.log(f"GPU: passed to the jobs (--gpus), as a worker started with USE_GPU=true ({GPU_DEVICE})")
        else:
            self.log("GPU: none (a worker without USE_GPU, like codabench.org's CPU-only default queue"
                     + ("; CUDA_VISIBLE_DEVICES is empty" if not o.docker else "") + "); --gpus passes them")
        data_host = Path(o.data_dir).resolve() if o.data_dir else work / "app_data"
        data_host.mkdir(exist_ok=True)
        self.log(f"/app/data: {data_host} " + ("(--data-dir; read-only on the worker)" if o.data_dir else
                                                "(an empty folder; the worker binds its host's data folder there, "
                                                "read-only: --data-dir DIR gives one)"))
        self.log("environment: " + ", ".join(f"{k}={v!r}" for k, v in WORKER_ENV.items()))

        # ---- prediction job ----
        pred = work / "prediction"
        pred.mkdir()
        program = _extract(sub, pred / "program")
        output = pred / "output"
        output.mkdir()
        input_src = bundle_path("input_data")
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
            mounts = {"/app/program": program, "/app/output": output, "/app/data": data_host}
            if input_data is not None:
                mounts["/app/input_data"] = input_data
            containers.append(self._container("prediction", substitute(cmd, kind="program", is_scoring=False),
                                              mounts, image))
            self.log(f"prediction: the submission runs its own command {cmd!r}")
        if ingestion_src is not None and not only_scoring:
            ingestion_dir = self._ingestion_copy(ingestion_src, pred / "ingestion_program", lowered, limit, res)
            istate, icmd = read_command(ingestion_dir)
            if istate == "ok":
                mounts = {"/app/program": ingestion_dir, "/app/output": output, "/app/ingested_program": program,
                          "/app/data": data_host}
                if input_data is not None:
                    mounts["/app/input_data"] = input_data
                self._map_config(ingestion_dir, mounts, "ingestion_program")
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
        outcome = self._wait(containers, limit)
        by = {c.label: c for c in containers}
        if self._past_limit(res, "prediction", outcome, limit, logs, "prediction_ingestion_stderr"):
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
            mounts = {"/app/program": sprog, "/app/output": sout, "/app/input": sc / "input",
                      "/app/shared": sc / "shared", "/app/data": data_host}
            self._map_config(sprog, mounts, "scoring_program")
            containers.append(self._container("scoring", substitute(scmd, kind="program", is_scoring=True), mounts, image))
        if ingestion_src is not None and only_scoring:
            idir = self._ingestion_copy(ingestion_src, sc / "ingestion_program", lowered, limit, res)
            istate, icmd = read_command(idir)
            if istate == "ok":
                mounts = {"/app/program": idir, "/app/output": sout, "/app/input": sc / "input",
                          "/app/shared": sc / "shared", "/app/ingested_program": sc / "input" / "res",
                          "/app/data": data_host}
                if input_data is not None:
                    mounts["/app/input_data"] = input_data
                self._map_config(idir, mounts, "ingestion_program")
                containers.append(self._container("scoring_ingestion", substitute(
                    icmd, kind="ingestion", is_scoring=True, ingestion_only_during_scoring=True), mounts, image))
        for c in containers:
            res.commands.append(c.argv)
            self._start(c, logs)
        outcome = self._wait(containers, limit)
        scoring = next((c for c in containers if c.label == "scoring"), None)
        if self._past_limit(res, "scoring", outcome, limit, logs, "scoring_stderr"):
            return self._finish(res, pred_out=output, score_out=sout)
        if scoring is not None and scoring.exit_code not in (0, None):
            res.message = f"the scoring program exited with code {scoring.exit_code}"
            tail = _tail(logs / "scoring_stderr")
            if tail:
                res.message += ": " + tail
            return self._finish(res, pred_out=output, score_out=sout)
        res.status = "Finished"
        scores, problems = parse_scores(sout)
        if problems:
            res.status = "Failed"
            res.message = problems[0]
            return self._finish(res, pred_out=output, score_out=sout)
        board = ((doc.get("leaderboards") or [{}])[0] or {})
        columns = board.get("columns") or []
        posted, refused = upload_scores(scores, columns)
        res.scores = posted
        res.row, _, res.missing = match_columns(posted or {}, columns)
        res.dropped = match_columns(scores, columns)[1] if isinstance(scores, dict) else []
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
        if posted is None:
            res.problems += refused
            res.missing = []
            res.message = ("Finished, but no scores reach the leaderboard: the worker marks the submission Finished "
                           "before it uploads the scores, and the upload fails (" + refused[0] + ")")
        elif res.problems or res.missing:
            res.message = "Finished, but the leaderboard would show n/a for some columns"
        else:
            res.message = scored_message(board.get("submission_rule"))
        return self._finish(res, pred_out=output, score_out=sout)

    def _ingestion_copy(self, src: Path, dest: Path, lowered: Optional[int], limit: int, res: RunResult) -> Path:
        """The run's copy of the ingestion program, its budget lowered with --time-limit."""
        folder = _extract(src, dest)
        if lowered is not None and (folder / "config.yaml").is_file():
            from .bundle import _rewrite_yaml_config

            _rewrite_yaml_config(folder / "config.yaml", {"time_budget_s": lowered}, "")
            note = (f"ingestion budget lowered to {lowered} s with --time-limit ({limit} s minus "
                    f"{limits.margin_rule()}), as `big bundle` derives it")
            if note not in res.notes:
                res.notes.append(note)
        if res.budget is not None and res.budget >= limit:
            note = (f"the ingestion budget ({res.budget:g} s) is not below the worker's limit ({limit} s): the "
                    "worker's own, unreliable limit decides how this job ends, not the ingestion program (`big lint`)")
            if note not in res.notes:
                res.notes.append(note)
        return folder

    def _map_config(self, folder: Path, mounts: Dict[str, Path], name: str) -> None:
        if self.o.docker:
            return
        changed = map_config_paths(folder, mounts)
        if changed:
            self.log(f"local run: container paths in {name}/config.yaml mapped to the run folders "
                     f"({', '.join(changed)})")

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
        from .. import registry

        def dataset_of(key: str):  # "{flag}_{metric}" of a dataset column (BIG: auc; BIG-C: auc_c), else None
            flag = next((f for f in registry.flags() if key.startswith(f + "_")), None)
            return (flag, key[len(flag) + 1:]) if flag else None

        head = [r for r in res.row if dataset_of(r[1]) is None]
        log("  " + " | ".join(f"{t}: {'n/a' if v is None else f'{v:.{p}f}'}" for t, _, v, p in head))
        per = {}
        for t, k, v, p in res.row:
            if dataset_of(k) is not None:
                flag, m = dataset_of(k)
                per.setdefault(flag, {})[m] = "n/a" if v is None else f"{v:.{p}f}"
        if per:
            order = {m: i for i, m in enumerate(("auc", "balacc", "kappa"))}
            metrics_ = sorted({m for d in per.values() for m in d}, key=lambda m: (order.get(m, len(order)), m))
            log("  " + f"{'dataset':<16}" + "".join(f"{m:>9}" for m in metrics_))
            for flag, d in per.items():
                log("  " + f"{flag:<16}" + "".join(f"{d.get(m, 'n/a'):>9}" for m in metrics_))
    for p in res.problems:
        log(f"problem: {p}")
    for n in res.notes:
        log(f"note: {n}")
    if res.dropped:
        log(f"ignored by the leaderboard (no column with that key): {', '.join(res.dropped)}")
    if res.missing:
        log(f"n/a on the leaderboard (not in the scores): {', '.join(res.missing)}")
    if res.environment:
        log(f"programs ran with {res.environment}")
    log(f"logs: {res.logs}")
    if res.prediction_output:
        log(f"prediction output: {res.prediction_output}")
    if res.scoring_output:
        log(f"scoring output: {res.scoring_output}")
    if res.detailed_results:
        log(f"detailed results: {res.detailed_results}")
