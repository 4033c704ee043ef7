"""Build the CodaBench bundle (``big bundle``) and the participants' starting kit.

See ``build_bundle`` for the layout. Everything is written into a temporary folder next to the
target and moved into place only when complete, so a failed build never leaves half a bundle.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .. import limits, registry
from ..errors import Problem, ReferenceDataError, UsageError
from . import dates
from . import facts as facts_mod
from .kitfiles import (KIT_COMPETITION_HEADER, KIT_PROGRAMS, REPO, PathLike, assemble_starting_kit, copy_package,
                       copy_thin_program, ignore_code, iter_files)

TRACKS = ("results", "code")
IMAGE_CODE = "codalab/codalab-legacy:gpu310"
IMAGE_RESULTS = "codalab/codalab-legacy:py312"


# ---------------------------------------------------------------------------------------------
# the starting kit: the bundle's own facts in it (its files: big.codabench.kitfiles)
# ---------------------------------------------------------------------------------------------

def finish_starting_kit(kit: Path, stage: Path, facts: "facts_mod.Facts", blocks: Dict[str, str],
                        competition_text: str) -> None:
    """The bundle's own copy of every fact in the kit: its programs' configs (thin), its
    competition.yaml, ``facts.json`` and the README's generated blocks."""
    for name in KIT_PROGRAMS:
        if (stage / name).is_dir():
            copy_thin_program(stage / name, kit / name)
        elif (kit / name).exists():
            shutil.rmtree(kit / name)
    (kit / "competition.yaml").write_text(KIT_COMPETITION_HEADER + competition_text, encoding="utf-8")
    (kit / facts_mod.FACTS_FILE).write_text(facts.to_json(), encoding="utf-8")
    readme = kit / "README.md"
    if readme.is_file():
        readme.write_text(fill_blocks(readme.read_text(encoding="utf-8"), blocks), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# pages: generated blocks and organizer fields
# ---------------------------------------------------------------------------------------------

#: the ingestion program's budget for an effective limit (big.limits: one rule everywhere)
time_budget = limits.time_budget
PAGE_DIR = "pages"
#: organizer fields in the pages and competition.yaml; `big lint` reports any left unfilled
FIELD_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BLOCK_RE = re.compile(r"(<!-- BEGIN big:(?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- END big:(?P=name) -->)", re.S)
EMAIL_RE = re.compile(r"^[^@\s{}]+@[^@\s{}]+\.[A-Za-z]{2,}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

#: imaging modality of each dataset (MedMNIST v2 paper, Table 1)
MODALITY = {
    "pathmnist": "Colon pathology (H&E)",
    "chestmnist": "Chest X-ray",
    "dermamnist": "Dermatoscopy",
    "octmnist": "Retinal OCT",
    "pneumoniamnist": "Chest X-ray (paediatric)",
    "retinamnist": "Fundus camera",
    "breastmnist": "Breast ultrasound",
    "bloodmnist": "Blood cell microscopy",
    "tissuemnist": "Kidney cortex microscopy",
    "organamnist": "Abdominal CT (axial)",
    "organcmnist": "Abdominal CT (coronal)",
    "organsmnist": "Abdominal CT (sagittal)",
}
TASK_TEXT = {
    "binary-class": "binary",
    "multi-class": "multi-class",
    "multi-label, binary-class": "multi-label",
    "ordinal-regression": "ordinal (scored as multi-class)",
}


def _px(sizes: Sequence[int]) -> str:
    sizes = sorted(int(s) for s in sizes)
    return ", ".join(str(s) for s in sizes[:-1]) + (" and " if len(sizes) > 1 else "") + f"{sizes[-1]} px"


def datasets_table() -> str:
    lines = ["| Dataset | Modality | Task | C | Classes | Train / Val / Test | Licence |",
             "|---|---|---|---|---|---|---|"]
    for ds in registry.datasets():
        n = ds.n_samples
        classes = "; ".join(f"{i}: {lab}" for i, lab in enumerate(ds.labels))
        lic = f"**{ds.license}**" if "NC" in ds.license else ds.license
        lines.append(f"| {ds.python_class} (`{ds.flag}`) | {MODALITY.get(ds.flag, '')} | {TASK_TEXT.get(ds.task, ds.task)} "
                     f"| {ds.n_labels} | {classes} | {n['train']:,} / {n['val']:,} / {n['test']:,} | {lic} |")
    total = {s: sum(d.n_samples[s] for d in registry.datasets()) for s in registry.SPLITS}
    lines.append(f"| **all 12** | | | | | {total['train']:,} / {total['val']:,} / {total['test']:,} | |")
    lines.append("")
    lines.append("C = number of score columns in a prediction file (2 for binary datasets, 14 labels for ChestMNIST).")
    return "\n".join(lines)


#: the pages' limits block (one rendering, in big.codabench.facts)
limits_text = facts_mod.limits_text


def _template_phases() -> List[dict]:
    try:
        return list(load_yaml(REPO / "competition.yaml").get("phases") or [])
    except (OSError, UsageError):
        return []


def _template_scoring_config(repo: PathLike = REPO) -> dict:
    try:
        return load_yaml(Path(repo) / "scoring_program" / "config.yaml")
    except (OSError, UsageError):
        return {}


def generated_blocks(*, resolutions: Sequence[int] = registry.SIZES, tracks: Sequence[str] = TRACKS,
                     input_sizes: Sequence[int] = (28, 64), synthetic: bool = False,
                     docker_image: Optional[str] = None, queue: Optional[str] = None,
                     phases: Optional[Sequence[dict]] = None,
                     cap: Optional[int] = limits.DEFAULT_QUEUE_CAP_S, doc: Optional[dict] = None,
                     scoring_config: Optional[dict] = None, worker: Optional[str] = None,
                     network: Optional[str] = None) -> Dict[str, str]:
    """The text of every ``<!-- BEGIN big:NAME -->`` block of the pages and the starting kit's README,
    from the bundle options (big.codabench.facts renders each fact once)."""
    return facts_mod.render_blocks(template_facts(
        resolutions=resolutions, tracks=tracks, input_sizes=input_sizes, synthetic=synthetic,
        docker_image=docker_image, queue=queue, phases=phases, cap=cap, doc=doc, scoring_config=scoring_config,
        worker=worker, network=network), phases_doc=phases if phases is not None else None)


def template_facts(*, resolutions: Sequence[int] = registry.SIZES, tracks: Sequence[str] = TRACKS,
                   input_sizes: Sequence[int] = (28, 64), synthetic: bool = False, docker_image: Optional[str] = None,
                   queue: Optional[str] = None, phases: Optional[Sequence[dict]] = None,
                   cap: Optional[int] = limits.DEFAULT_QUEUE_CAP_S, doc: Optional[dict] = None,
                   scoring_config: Optional[dict] = None, worker: Optional[str] = None,
                   network: Optional[str] = None, repo: PathLike = REPO) -> "facts_mod.Facts":
    """Facts of the committed template (or of ``doc``) under these options, without building a bundle."""
    import copy

    if doc is None:
        try:
            doc = load_yaml(Path(repo) / "competition.yaml")
        except (OSError, UsageError):
            doc = {}
    doc = copy.deepcopy(doc)
    if phases is not None:
        doc["phases"] = list(phases)
    doc["docker_image"] = docker_image or doc.get("docker_image") or (IMAGE_CODE if "code" in tracks else IMAGE_RESULTS)
    if queue:
        doc["queue"] = queue
    sc = dict(_template_scoring_config(repo) if scoring_config is None else scoring_config)
    sc["resolutions"] = sorted(int(r) for r in resolutions)
    return facts_mod.compute(doc, scoring_config=sc, tracks=tracks, resolutions=resolutions, input_sizes=input_sizes,
                             cap=None if queue else cap, worker=worker, network=network, synthetic=synthetic)


def fill_blocks(text: str, blocks: Dict[str, str]) -> str:
    def repl(m):
        name = m.group("name")
        if name not in blocks:
            return m.group(0)
        return m.group(1) + blocks[name] + m.group(4)

    return BLOCK_RE.sub(repl, text)


def fill_fields(text: str, fields: Dict[str, Optional[str]]) -> str:
    def repl(m):
        value = fields.get(m.group(1))
        return m.group(0) if value is None else value

    return FIELD_RE.sub(repl, text)


def unfilled_fields(text: str) -> List[str]:
    return sorted(set(FIELD_RE.findall(text)))


# ---------------------------------------------------------------------------------------------
# competition.yaml
# ---------------------------------------------------------------------------------------------

def load_yaml(path: PathLike) -> dict:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise UsageError([Problem(f"not valid YAML: {exc}", file=str(path))]) from None
    if not isinstance(doc, dict):
        raise UsageError([Problem("must be a YAML mapping", file=str(path))])
    return doc


def parse_start(text: str) -> _dt.datetime:
    """``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM[:SS]`` in UTC (CodaBench ignores offsets)."""
    parsed = dates.parse_utc(text)
    if parsed is None:
        raise UsageError([Problem(f"--start {text!r}: expected YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS' (UTC)")])
    return parsed


def _phase_date(value, where: str) -> _dt.datetime:
    """The UTC instant an organizer wrote in the template (a YAML date-time keeps its time here)."""
    when, how = dates.intended_datetime(value)
    if when is None or (isinstance(value, str) and dates.parse_utc(value) is None):
        raise UsageError([Problem(f"{where} is {value!r}: write the UTC time as 'YYYY-MM-DD HH:MM:SS' (quoted)",
                                  file="competition.yaml")])
    return when


def render_competition(template: dict, *, tracks: Sequence[str], resolutions: Sequence[int], synthetic: bool,
                       docker_image: Optional[str], queue: Optional[str], start: Optional[_dt.datetime],
                       contact_email: Optional[str]) -> Tuple[dict, List[str]]:
    """Apply what the options and the registry decide to a copy of the template; list the changes."""
    import copy

    doc = copy.deepcopy(template)
    changes: List[str] = []

    def show(v) -> str:
        if isinstance(v, _dt.datetime):
            return f"{v.strftime('%Y-%m-%d %H:%M:%S')} (unquoted)"
        return repr(v.isoformat()) + " (unquoted)" if isinstance(v, _dt.date) else repr(v)

    def setkey(container: dict, key: str, value, label: str) -> None:
        old = container.get(key, "<unset>")
        if old != value:
            changes.append(f"{label}: {show(old)} -> {show(value)}")
            container[key] = value

    # leaderboard columns from the registry
    boards = doc.get("leaderboards") or [{}]
    cols = registry.leaderboard_columns()
    if boards[0].get("columns") != cols:
        changes.append(f"leaderboards[0].columns: {len(boards[0].get('columns') or [])} columns -> "
                       f"{len(cols)} from big.registry.leaderboard_columns()")
        boards[0]["columns"] = cols
    doc["leaderboards"] = boards
    image = docker_image or (IMAGE_CODE if "code" in tracks else IMAGE_RESULTS)
    setkey(doc, "docker_image", image, "docker_image")
    if queue:
        setkey(doc, "queue", queue, "queue")
    title = str(doc.get("title", "BIG benchmark"))
    suffix = ""
    if sorted(resolutions) != list(registry.SIZES):
        suffix += f" — {_px(resolutions)}"
    if synthetic:
        suffix += " [SYNTHETIC DATA]"
    if suffix:
        setkey(doc, "title", title + suffix, "title")
    if contact_email:
        setkey(doc, "contact_email", contact_email, "contact_email")
    # tasks: the results track has no ingestion program and no input data
    if "code" not in tracks:
        for t in doc.get("tasks") or []:
            for k in ("ingestion_program", "input_data"):
                if k in t:
                    changes.append(f"tasks[{t.get('index')}].{k}: removed (results track only)")
                    del t[k]
    # phase dates: the first phase starts at --start and keeps its length; later phases shift along.
    # Every date is written as a quoted 'YYYY-MM-DD HH:MM:SS' UTC string: CodaBench cuts an unquoted
    # YAML date-time to midnight (big.codabench.dates).
    phases = doc.get("phases") or []
    delta = _dt.timedelta(0)
    if start is not None and phases:
        if "start" not in phases[0]:
            raise UsageError([Problem("phases[0] has no start; cannot shift the phases", file="competition.yaml")])
        delta = start - _phase_date(phases[0]["start"], "phases[0].start")
    for i, ph in enumerate(phases):
        for key in ("start", "end"):
            if key in ph:
                when = _phase_date(ph[key], f"phases[{i}].{key}")
                setkey(ph, key, dates.format_utc(when + delta), f"phases[{i}].{key}")
    return doc, changes


def dump_competition(doc: dict) -> str:
    import yaml

    header = ("# Generated by `big bundle` from the repository's competition.yaml template.\n"
              "# CodaBench competition bundle, version 2 (see pages/ and `big lint`).\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False)


# ---------------------------------------------------------------------------------------------
# programs
# ---------------------------------------------------------------------------------------------

def _rewrite_yaml_config(path: Path, updates: Dict[str, object], header: str) -> List[str]:
    """Set top-level ``updates`` in a program's config.yaml, keeping its comments and other keys.

    A ``key: value  # comment`` line keeps its comment; a missing key is appended with ``header`` as
    its comment. The result is re-read to check that it says what was meant.
    """
    import yaml

    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    doc = (yaml.safe_load(text) or {}) if text else {}
    if not isinstance(doc, dict):
        raise UsageError([Problem("must be a YAML mapping", file=str(path))])
    changes = []
    for k, v in updates.items():
        if doc.get(k) == v:
            continue
        changes.append(f"{path.parent.name}/{path.name}: {k}: {doc.get(k, '<unset>')!r} -> {v!r}")
        value = yaml.safe_dump(v, default_flow_style=True).strip()
        if value.endswith("..."):
            value = value[:-3].strip()
        line_re = re.compile(rf"^{re.escape(k)}:[^\n#]*?(\s*#.*)?$", re.M)
        if line_re.search(text):
            text = line_re.sub(lambda m: f"{k}: {value}" + (m.group(1) or ""), text, count=1)
        else:
            text = text + ("" if not text or text.endswith("\n") else "\n") + header + f"{k}: {value}\n"
    check = yaml.safe_load(text) or {}
    for k, v in updates.items():
        if check.get(k) != v:
            raise UsageError([Problem(f"could not set {k} (found {check.get(k)!r} after editing)", file=str(path))])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return changes


def copy_program(src: Path, dest: Path, *, baselines_tables: Optional[Path] = None) -> Path:
    """Copy a program folder plus the ``big`` package beside its entry point (runs on its own)."""
    if not (src / "metadata.yaml").is_file() and not (src / "metadata").is_file():
        raise UsageError([Problem("no metadata.yaml in the program folder", file=str(src))])
    shutil.copytree(src, dest, ignore=ignore_code)
    copy_package(dest)
    if baselines_tables is not None and baselines_tables.is_dir():
        shutil.copytree(baselines_tables, dest / "baselines" / "tables", ignore=ignore_code)
    return dest


# ---------------------------------------------------------------------------------------------
# the bundle
# ---------------------------------------------------------------------------------------------

@dataclass
class BundleOptions:
    data_root: PathLike
    out: PathLike = "big_bundle.zip"
    tracks: Sequence[str] = TRACKS
    input_sizes: Optional[Sequence[int]] = None
    resolutions: Sequence[int] = registry.SIZES
    allow_synthetic: bool = False
    download: bool = False
    organizer: Optional[str] = None
    contact_email: Optional[str] = None
    start: Optional[str] = None
    docker_image: Optional[str] = None
    queue: Optional[str] = None
    #: the default queue's cap on every job (big.limits); None: 600 s without a queue, none with one
    platform_cap: Optional[int] = None
    keep_folder: Optional[PathLike] = None  # also leave the unzipped bundle here
    n_boot: Optional[int] = None  # bootstrap replicates of the scoring program (default: its config)
    #: the organizer's own worker, as the pages show it (free text: GPU, CPU cores, memory)
    worker: Optional[str] = None
    #: network inside the containers: "enabled" or "disabled" (only an own worker can promise none)
    worker_network: Optional[str] = None
    repo: PathLike = REPO


@dataclass
class BundleResult:
    zip_path: Path
    folder: Optional[Path]
    changes: List[str]
    contents: List[Tuple[str, int]]
    findings: list
    synthetic: bool
    input_sizes: List[int] = field(default_factory=list)
    facts: Optional["facts_mod.Facts"] = None

    @property
    def zip_bytes(self) -> int:
        return self.zip_path.stat().st_size


def _check_options(o: BundleOptions) -> Tuple[List[str], List[int], List[int], Optional[_dt.datetime]]:
    problems: List[Problem] = []
    tracks = [t.strip() for t in o.tracks if t.strip()]
    bad = [t for t in tracks if t not in TRACKS]
    if bad or not tracks:
        problems.append(Problem(f"--tracks {','.join(tracks)!s}: expected results, code or both"))
    resolutions = sorted({int(r) for r in o.resolutions})
    badr = [r for r in resolutions if r not in registry.SIZES]
    if badr or not resolutions:
        problems.append(Problem(f"--resolutions {resolutions}: expected some of {', '.join(map(str, registry.SIZES))}"))
    if o.input_sizes is None:
        input_sizes = [s for s in (28, 64) if s in resolutions] or resolutions[:1]
    else:
        input_sizes = sorted({int(s) for s in o.input_sizes})
        outside = [s for s in input_sizes if s not in resolutions]
        if outside or not input_sizes:
            problems.append(Problem(f"--input-sizes {input_sizes}: every size must be an accepted resolution "
                                    f"({', '.join(map(str, resolutions))})"))
    if o.contact_email is not None and not EMAIL_RE.match(o.contact_email):
        problems.append(Problem(f"--contact-email {o.contact_email!r} is not an e-mail address"))
    if o.queue is not None and not UUID_RE.match(o.queue):
        problems.append(Problem(f"--queue {o.queue!r}: expected the queue's vhost UUID as CodaBench shows it "
                                "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"))
    if o.platform_cap is not None:
        if o.queue is not None:
            problems.append(Problem("--platform-cap is the cap of CodaBench's default queue; with --queue (your own "
                                    "queue) CodaBench applies execution_time_limit unchanged: give one of the two"))
        elif "code" not in tracks:
            problems.append(Problem("--platform-cap sets the ingestion budget of the code track, and a results-only "
                                    "bundle (--tracks results) has no ingestion program to store it in: leave it out "
                                    "(its scoring jobs are short; `big lint` checks them against the default cap, "
                                    f"{limits.DEFAULT_QUEUE_CAP_S} s)"))
        elif isinstance(o.platform_cap, bool) or not isinstance(o.platform_cap, int) or o.platform_cap <= 0:
            problems.append(Problem(f"--platform-cap {o.platform_cap!r}: expected a number of seconds (CodaBench's "
                                    f"code default is {limits.DEFAULT_QUEUE_CAP_S})"))
    if o.n_boot is not None and int(o.n_boot) < 0:
        problems.append(Problem(f"--n-boot {o.n_boot}: expected 0 (no intervals) or more replicates"))
    if o.worker_network is not None and o.worker_network not in facts_mod.NETWORK:
        problems.append(Problem(f"--worker-network {o.worker_network!r}: expected enabled or disabled"))
    elif o.worker_network == "disabled" and o.queue is None:
        problems.append(Problem("--worker-network disabled needs --queue: CodaBench's default workers do not disable "
                                "the network, only your own worker can (COMPETITION_CONTAINER_NETWORK_DISABLED=true)"))
    if o.worker is not None and (not o.worker.strip() or len(o.worker) > 300 or "\n" in o.worker):
        problems.append(Problem("--worker: one line of at most 300 characters describing your worker "
                                "(e.g. \"1x NVIDIA A100 40 GB, 8 CPU cores, 64 GB memory\")"))
    if o.docker_image is not None and (not o.docker_image.strip() or len(o.docker_image) > 128):
        problems.append(Problem("--docker-image must be a public image name of at most 128 characters"))
    if not Path(o.data_root).is_dir():
        problems.append(Problem("the data root is not a folder", file=str(o.data_root)))
    if not str(o.out).endswith(".zip"):
        problems.append(Problem(f"--out {o.out}: the bundle is a .zip file"))
    start = parse_start(o.start) if o.start else None
    if problems:
        raise UsageError(problems)
    return tracks, resolutions, input_sizes, start


def _download_missing(root: Path, sizes: Sequence[int], log) -> None:
    """Fetch the files the bundle needs that are not in ``root``: every dataset at ``sizes`` (the
    input images of the code track), and at least one size of every dataset (for the labels)."""
    from ..reference import download

    for ds in registry.datasets():
        wanted = list(sizes)
        if not wanted and not any((root / ds.file_name(s)).is_file() for s in registry.SIZES):
            wanted = [28]
        for size in wanted:
            if not (root / ds.file_name(size)).is_file():
                download(root, ds.flag, size, progress=log)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000.0
    return f"{n:.2f} GB"


def zip_folder(folder: Path, out: Path) -> List[Tuple[str, int]]:
    """Zip the *contents* of ``folder`` (competition.yaml at the zip root), atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    contents = []
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for path in iter_files(folder):
                rel = path.relative_to(folder).as_posix()
                # image arrays: fast compression (they are most of the bytes), text: default level
                level = 1 if path.suffix == ".npy" else 6
                zf.write(path, rel, compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
                contents.append((rel, path.stat().st_size))
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return contents


def summarize_contents(contents: List[Tuple[str, int]], depth: int = 2) -> List[Tuple[str, int, int]]:
    """(folder or file up to ``depth`` levels, files, bytes), in path order."""
    agg: Dict[str, List[int]] = {}
    for rel, size in contents:
        parts = rel.split("/")
        key = "/".join(parts[:depth]) + ("/" if len(parts) > depth else "")
        a = agg.setdefault(key, [0, 0])
        a[0] += 1
        a[1] += size
    return [(k, v[0], v[1]) for k, v in sorted(agg.items())]


def build_bundle(options: BundleOptions, *, log: Callable[[str], None] = print) -> BundleResult:
    """Build the CodaBench bundle zip. Layout (zip root)::

        competition.yaml  logo.png  pages/*.md
        scoring_program/      metadata.yaml score.py config.yaml big/ baselines/tables/
        ingestion_program/    metadata.yaml ingest.py config.yaml big/          (code track)
        dev/reference_data/   labels of the validation split (scoring only)
        dev/input_data/       images of the validation split, {flag}_{size}.npy  (code track)
        final/reference_data/ final/input_data/   the same for the test split
        starting_kit/         what participants download

    Nothing is written at ``out`` unless the whole build and the lint pass.
    """
    from ..inputdata import write_input_data
    from ..reference import Reference, build_reference

    o = options
    tracks, resolutions, input_sizes, start = _check_options(o)
    repo = Path(o.repo)
    root = Path(o.data_root)
    out = Path(o.out).resolve()
    template_path = repo / "competition.yaml"
    template = load_yaml(template_path)
    for needed in ("logo.png", PAGE_DIR, "scoring_program"):
        if not (repo / needed).exists():
            hint = " (run `python scripts/make_logo.py`)" if needed == "logo.png" else ""
            raise UsageError([Problem(f"missing {needed}{hint}", file=str(repo))])
    if "code" in tracks and not (repo / "ingestion_program").is_dir():
        raise UsageError([Problem("the code track needs ingestion_program/; build with --tracks results",
                                  file=str(repo))])
    fields = {"organizer": o.organizer, "contact_email": o.contact_email}
    missing_fields = set()
    for page in sorted((repo / PAGE_DIR).glob("*.md")):
        missing_fields.update(f for f in unfilled_fields(page.read_text(encoding="utf-8")) if not fields.get(f))
    if FIELD_RE.search(str(template.get("contact_email", ""))) and not o.contact_email:
        missing_fields.add("contact_email")
    if missing_fields:
        opts = ", ".join(f"--{f.replace('_', '-')}" for f in sorted(missing_fields))
        raise UsageError([Problem(f"the pages need {opts} (fields {', '.join(sorted(missing_fields))} are unfilled)")])

    if o.download:
        _download_missing(root, input_sizes if "code" in tracks else [], log)

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", suffix=".staging", dir=out.parent))
    try:
        changes: List[str] = []
        log(f"building the bundle in {stage}")
        # reference data (labels) per split
        synthetic = False
        for split, folder in (("val", "dev"), ("test", "final")):
            ref_dir = build_reference(root, split, stage / folder / "reference_data",
                                      allow_synthetic=o.allow_synthetic, progress=log)
            synthetic |= Reference(ref_dir).synthetic
            log(f"{folder}/reference_data: labels of the {split} split")
            if "code" in tracks:
                write_input_data(root, split, input_sizes, stage / folder / "input_data",
                                 allow_synthetic=o.allow_synthetic, progress=log)
                log(f"{folder}/input_data: images of the {split} split at {_px(input_sizes)}")
        # programs
        copy_program(repo / "scoring_program", stage / "scoring_program",
                      baselines_tables=repo / "baselines" / "tables")
        scoring_updates: Dict[str, object] = {"resolutions": resolutions}
        if o.n_boot is not None:
            scoring_updates["n_boot"] = int(o.n_boot)
        changes += _rewrite_yaml_config(stage / "scoring_program" / "config.yaml", scoring_updates,
                                        "# set by big bundle\n")
        if not (repo / "baselines" / "tables").is_dir():
            log("note: baselines/tables/ does not exist yet; the report shows no baseline overlay")
        doc, yaml_changes = render_competition(
            template, tracks=tracks, resolutions=resolutions, synthetic=synthetic, docker_image=o.docker_image,
            queue=o.queue, start=start, contact_email=o.contact_email)
        changes += yaml_changes
        cap = limits.default_cap(o.queue) if o.platform_cap is None else int(o.platform_cap)
        lim = limits.phase_limits(doc.get("phases") or [], cap)
        if "code" in tracks:
            copy_program(repo / "ingestion_program", stage / "ingestion_program")
            changes += _rewrite_yaml_config(
                stage / "ingestion_program" / "config.yaml", {"time_budget_s": lim.budget, "platform_cap_s": cap},
                f"# {lim.budget_comment()}\n")
        for pl in lim.phases:
            if pl.capped:
                log(f"note: phase {pl.name!r} asks for {pl.asked} s; CodaBench's default queue runs its jobs for "
                    f"{pl.effective} s (cap {cap} s; --queue for your own queue)")
        # every shared fact, once (big.codabench.facts): pages, the kit's README and facts.json
        facts = facts_mod.compute(doc, scoring_config=load_yaml(stage / "scoring_program" / "config.yaml"),
                                  tracks=tracks, resolutions=resolutions, input_sizes=input_sizes, cap=cap,
                                  worker=o.worker, network=o.worker_network, synthetic=synthetic)
        if o.queue and not o.worker:
            log("note: --queue without --worker: the pages say the organizers' worker is not described "
                "(give --worker \"GPU, CPU cores, memory\")")
        blocks = facts_mod.render_blocks(facts, phases_doc=doc.get("phases") or [])
        competition_text = dump_competition(doc)
        # starting kit, logo, pages
        assemble_starting_kit(stage / "starting_kit", repo=repo)
        finish_starting_kit(stage / "starting_kit", stage, facts, blocks, competition_text)
        shutil.copy2(repo / "logo.png", stage / "logo.png")
        (stage / PAGE_DIR).mkdir()
        for page in sorted((repo / PAGE_DIR).glob("*.md")):
            text = fill_fields(fill_blocks(page.read_text(encoding="utf-8"), blocks), fields)
            (stage / PAGE_DIR / page.name).write_text(text, encoding="utf-8")
        (stage / "competition.yaml").write_text(competition_text, encoding="utf-8")

        findings, contents, folder = lint_zip_keep(stage, out, o.keep_folder, log)
        return BundleResult(zip_path=out, folder=folder, changes=changes, contents=contents, findings=findings,
                            synthetic=synthetic, input_sizes=list(input_sizes) if "code" in tracks else [],
                            facts=facts)
    finally:
        if stage.exists():
            shutil.rmtree(stage)


def lint_zip_keep(stage: Path, out: Path, keep_folder: Optional[PathLike], log: Callable[[str], None]):
    """The end of every bundle build (BIG and BIG-C): lint the staged folder (any error: nothing is
    written), zip it to ``out`` and, with ``keep_folder``, move the folder there. Returns (findings,
    the zip's contents, the kept folder or None)."""
    from . import lint as lint_mod

    findings = lint_mod.lint_bundle(stage)
    errors = [f for f in findings if f.level == "error"]
    for f in findings:
        log(f"lint: {f}")
    if errors:
        raise ReferenceDataError([Problem(str(f)) for f in errors],
                                 f"the bundle fails `big lint` ({len(errors)} error(s)); nothing was written")
    contents = zip_folder(stage, out)
    folder = None
    if keep_folder:
        folder = Path(keep_folder)
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(stage, folder)
        except OSError:  # another file system
            shutil.move(str(stage), str(folder))
    return findings, contents, folder


def print_result(res: BundleResult, log: Callable[[str], None] = print) -> None:
    log("changed from the template:")
    for c in res.changes or ["(nothing)"]:
        log(f"  {c}")
    log("contents (uncompressed):")
    for name, n, size in summarize_contents(res.contents):
        log(f"  {_human(size):>10}  {name}" + (f"  ({n} files)" if n > 1 else ""))
    total = sum(s for _, s in res.contents)
    log(f"bundle {res.zip_path}: {_human(res.zip_bytes)} zipped, {_human(total)} unzipped"
        + (" — SYNTHETIC DATA" if res.synthetic else ""))
    warnings = [f for f in res.findings if f.level != "error"]
    log(f"lint: no errors, {len(warnings)} warning(s)")


# ---------------------------------------------------------------------------------------------
# size estimate for the genuine data (images of val + test at the input sizes, uncompressed)
# ---------------------------------------------------------------------------------------------

def estimate_input_bytes(sizes: Sequence[int], splits: Sequence[str] = ("val", "test")) -> int:
    total = 0
    for ds in registry.datasets():
        for size in sizes:
            per = size * size * ds.n_channels
            total += sum(ds.n_samples[s] for s in splits) * per + 128
    return total


def default_blocks() -> Dict[str, str]:
    """The generated blocks as committed in the repository (all resolutions, both tracks, genuine data,
    the template's phases and the scoring program's config)."""
    return generated_blocks()


#: committed files with generated blocks: the pages, the starting kit's README and the README
def _generated_files(repo: Path) -> List[Path]:
    return sorted((repo / PAGE_DIR).glob("*.md")) + [p for p in [repo / "starting_kit" / "README.md",
                                                                   repo / "README.md"] if p.is_file()]


def template_drift(repo: PathLike = REPO) -> List[str]:
    """Where the committed template differs from what the registry generates (empty = in sync)."""
    out = []
    doc = load_yaml(Path(repo) / "competition.yaml")
    cols = ((doc.get("leaderboards") or [{}])[0] or {}).get("columns")
    if cols != registry.leaderboard_columns():
        out.append("competition.yaml: leaderboards[0].columns differ from big.registry.leaderboard_columns()")
    blocks = default_blocks()
    for page in _generated_files(Path(repo)):
        text = page.read_text(encoding="utf-8")
        if fill_blocks(text, blocks) != text:
            out.append(f"{page.relative_to(repo)}: generated blocks are stale")
    return out


def sync_template(repo: PathLike = REPO) -> List[str]:
    """Refresh the generated blocks of the committed pages and kit README (``python -m big.codabench.bundle``)."""
    changed = []
    blocks = default_blocks()
    for page in _generated_files(Path(repo)):
        text = page.read_text(encoding="utf-8")
        new = fill_blocks(text, blocks)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed.append(str(page))
    return changed


if __name__ == "__main__":  # refresh the committed pages' generated blocks
    for p in sync_template():
        print(f"updated {p}")
