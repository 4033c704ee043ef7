"""``big bundle --benchmark robustness``: the BIG-C CodaBench bundle from a corrupted set.

Reads only the corrupted set that ``big corrupt`` wrote (CDIR/val and CDIR/test); never imports
medmnistc. Layout (zip root)::

    competition.yaml  logo.png  pages/*.md            (from robustness/: template and pages)
    scoring_program/      metadata.yaml score.py config.yaml big/      (big.robustness.scoring)
    ingestion_program/    BIG's ingestion program, config: budget, cap, no /app/data fallback
    dev/input_data/       pooled Development images {flag}_{size}.npy (public seed)
    dev/reference_data/   labels and id map of the Development sample
    final/input_data/     pooled Test images (private seed)
    final/reference_data/ labels and id map of the Test sample (scoring only)
    starting_kit/         README, sample code submission, the big package

Everything is staged beside the target and zipped only when the whole build and `big lint` pass.
The reused pieces (program copies, pages' blocks, YAML helpers, zip) are BIG's (big.codabench.bundle).
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from .. import limits, registry
from ..codabench import bundle as B
from ..codabench import dates
from ..errors import Problem, UsageError
from . import BENCHMARK, columns, layout
from .task import write_task

PathLike = Union[str, os.PathLike]
REPO = B.REPO
HOME = "robustness"  # the template, pages, scoring program and kit README of BIG-C in the repository
DEFAULT_OUT = "big_c_bundle.zip"


@dataclass
class RobustnessBundleOptions:
    corrupted: PathLike
    out: PathLike = DEFAULT_OUT
    input_sizes: Optional[Sequence[int]] = None  # default 28, 64 (those the set has)
    allow_synthetic: bool = False  # accept a stand-in, synthetic-source or incomplete set (stamped)
    organizer: Optional[str] = None
    contact_email: Optional[str] = None
    start: Optional[str] = None
    docker_image: Optional[str] = None
    queue: Optional[str] = None
    platform_cap: Optional[int] = None
    keep_folder: Optional[PathLike] = None
    verify: bool = True  # recompute the corrupted set's sha256s before using it
    repo: PathLike = REPO


@dataclass
class RobustnessBundleResult:
    zip_path: Path
    folder: Optional[Path]
    changes: List[str]
    contents: List[Tuple[str, int]]
    findings: list
    test_bundle: bool
    input_sizes: List[int] = field(default_factory=list)
    pooled: Dict[str, Dict[str, int]] = field(default_factory=dict)  # split -> flag -> pooled images

    @property
    def zip_bytes(self) -> int:
        return self.zip_path.stat().st_size

    def bytes_per_size(self) -> Dict[int, int]:
        """Uncompressed bytes of the pooled input images per input size (both phases)."""
        out: Dict[int, int] = {}
        for rel, size in self.contents:
            parts = rel.split("/")
            if len(parts) == 3 and parts[1] == "input_data" and parts[2].endswith(".npy"):
                s = int(parts[2].rsplit("_", 1)[1][:-4])
                out[s] = out.get(s, 0) + size
        return dict(sorted(out.items()))


def _check(o: RobustnessBundleOptions) -> Tuple[layout.CorruptedSet, layout.CorruptedSet, List[int],
                                                  Optional[_dt.datetime], List[str]]:
    problems: List[Problem] = []
    if not str(o.out).endswith(".zip"):
        problems.append(Problem(f"--out {o.out}: the bundle is a .zip file"))
    if o.contact_email is not None and not B.EMAIL_RE.match(o.contact_email):
        problems.append(Problem(f"--contact-email {o.contact_email!r} is not an e-mail address"))
    if o.queue is not None and not B.UUID_RE.match(o.queue):
        problems.append(Problem(f"--queue {o.queue!r}: expected the queue's vhost UUID as CodaBench shows it"))
    if o.platform_cap is not None and (o.queue is not None or isinstance(o.platform_cap, bool)
                                       or not isinstance(o.platform_cap, int) or o.platform_cap <= 0):
        problems.append(Problem("--platform-cap is a positive number of seconds, for CodaBench's default queue only "
                                "(not with --queue)"))
    if not Path(o.corrupted).is_dir():
        problems.append(Problem("--corrupted: not a folder (write one with `big corrupt`)", file=str(o.corrupted)))
    if problems:
        raise UsageError(problems)
    dev, test = layout.find_split(o.corrupted, "val"), layout.find_split(o.corrupted, "test")
    stamps: List[str] = []
    for cs in (dev, test):
        for flagged, why in ((cs.generator == layout.GENERATOR_STANDIN, cs.label),
                             (cs.synthetic_source, "made from SYNTHETIC source files (MD5 differs from medmnist INFO)"),
                             (not cs.manifest.get("complete"), "INCOMPLETE (not every corruption of MedMNIST-C)")):
            if flagged and why not in stamps:
                stamps.append(why)
    if dev.generator != test.generator:
        problems.append(Problem(f"the Development sample was made by {dev.generator}, the Test sample by "
                                f"{test.generator}: make both with the same generator", file=str(o.corrupted)))
    if not dev.manifest.get("seed_is_public", True) or test.manifest.get("seed_is_public", False):
        problems.append(Problem("the Development sample must use the public seed and the Test sample a private one "
                                "(`big corrupt` sets this)", file=str(o.corrupted)))
    if test.seed == dev.seed:
        problems.append(Problem(f"the Test sample uses the public Development seed {dev.seed}: regenerate it with a "
                                "private --seed", file=str(o.corrupted)))
    if stamps and not o.allow_synthetic:
        problems.append(Problem("this corrupted set is for tests only (" + "; ".join(stamps) + "): pass "
                                "--allow-synthetic to build a test bundle (stamped as such)", file=str(o.corrupted)))
    have = sorted(set(dev.sizes) & set(test.sizes))
    if o.input_sizes is None:
        sizes = [s for s in (28, 64) if s in have] or have[:1]
    else:
        sizes = sorted({int(s) for s in o.input_sizes})
    bad = [s for s in sizes if s not in have]
    if bad or not sizes:
        problems.append(Problem(f"--input-sizes {sizes}: the corrupted set has {', '.join(map(str, have))} px in both "
                                f"samples (`big corrupt --sizes ...`)", file=str(o.corrupted)))
    start = B.parse_start(o.start) if o.start else None
    if problems:
        raise UsageError(problems)
    return dev, test, sizes, start, stamps


def render_competition(template: dict, *, docker_image: Optional[str], queue: Optional[str],
                       start: Optional[_dt.datetime], contact_email: Optional[str], stamps: List[str],
                       sizes: Sequence[int]) -> Tuple[dict, List[str]]:
    import copy

    doc = copy.deepcopy(template)
    changes: List[str] = []

    def setkey(container: dict, key: str, value, label: str) -> None:
        old = container.get(key, "<unset>")
        if old != value:
            changes.append(f"{label}: {old!r} -> {value!r}")
            container[key] = value

    boards = doc.get("leaderboards") or [{}]
    cols = columns.leaderboard_columns()
    if boards[0].get("columns") != cols:
        changes.append(f"leaderboards[0].columns: {len(boards[0].get('columns') or [])} columns -> {len(cols)} from "
                       "big.robustness.columns")
        boards[0]["columns"] = cols
    doc["leaderboards"] = boards
    setkey(doc, "docker_image", docker_image or B.IMAGE_CODE, "docker_image")
    if queue:
        setkey(doc, "queue", queue, "queue")
    suffix = ""
    if list(sizes) != [28, 64]:
        suffix += f" — {B._px(sizes)}"
    if stamps:
        suffix += " [STAND-IN/SYNTHETIC TEST BUNDLE]"
    if suffix:
        setkey(doc, "title", str(doc.get("title", "BIG-C")) + suffix, "title")
    if contact_email:
        setkey(doc, "contact_email", contact_email, "contact_email")
    phases = doc.get("phases") or []
    delta = _dt.timedelta(0)
    if start is not None and phases:
        delta = start - B._phase_date(phases[0]["start"], "phases[0].start")
    for i, ph in enumerate(phases):
        for key in ("start", "end"):
            if key in ph:
                when = B._phase_date(ph[key], f"phases[{i}].{key}")
                setkey(ph, key, dates.format_utc(when + delta), f"phases[{i}].{key}")
    return doc, changes


# ---------------------------------------------------------------------------------------------
# pages
# ---------------------------------------------------------------------------------------------

def columns_text() -> str:
    explain = {
        "auc_c": "per dataset, the mean AUC over its corruptions and severities; then the mean over the 12 datasets "
                 "(**ranking**)",
        "balacc_c": "the same for balanced accuracy", "kappa_c": "the same for Cohen's kappa",
        "auc_clean": "the mean AUC on the clean copy of the same sample",
        "auc_drop": "the mean over the datasets of (clean AUC - corrupted AUC) / clean AUC (lower is better)",
        "resolution": "the resolution your model chose",
    }
    lines = ["| column | key | meaning |", "|---|---|---|"]
    for c in columns.leaderboard_columns():
        k = c["key"]
        lines.append(f"| {c['title']} | `{k}` | {explain.get(k, 'that dataset corrupted AUC (mean over corruptions and severities)')} |")
    return "\n".join(lines) + "\n"


def corruptions_text(test: layout.CorruptedSet) -> str:
    lines = ["| Dataset | corruptions | count |", "|---|---|---|"]
    for flag in registry.flags():
        cs = test.entry(flag)["corruptions"]
        lines.append(f"| {registry.get(flag).python_class} | {', '.join(c.replace('_', ' ') for c in cs)} | {len(cs)} |")
    return "\n".join(lines) + "\n"


def sample_text(dev: layout.CorruptedSet, test: layout.CorruptedSet) -> str:
    sev = ", ".join(map(str, test.severities))
    lines = [f"Corruptions: **{test.label}**, severities **{sev}** of 5.", "",
             "| Dataset | Development: images x versions = pooled ids | Test: images x versions = pooled ids |",
             "|---|---|---|"]
    for flag in registry.flags():
        d, t = dev.entry(flag), test.entry(flag)
        lines.append(f"| {registry.get(flag).python_class} | {d['n']} x {len(d['blocks'])} = {d['n'] * len(d['blocks']):,} "
                     f"| {t['n']} x {len(t['blocks'])} = {t['n'] * len(t['blocks']):,} |")
    nd = sum(dev.rows(f) for f in registry.flags())
    nt = sum(test.rows(f) for f in registry.flags())
    lines.append(f"| **all 12** | {nd:,} | {nt:,} |")
    lines += ["", f"*Versions* = the clean copy plus every corruption of the dataset at each severity. The samples are "
                  f"stratified by class (ChestMNIST: by each image's rarest label) and seeded: the **Development** "
                  f"sample (at most {dev.manifest.get('per_dataset')} validation images per dataset) uses the public "
                  f"seed **{dev.seed}**, the **Test** sample (at most {test.manifest.get('per_dataset')} test images "
                  "per dataset) a private one. Within each dataset the pooled images are shuffled: an id says "
                  "nothing about the image."]
    return "\n".join(lines) + "\n"


def sizes_text(sizes: Sequence[int]) -> str:
    return (f"The images are provided at **{B._px(sizes)}**: set `Model.resolution` to one of these; a model asking "
            "for another size fails with a message listing the available ones.\n")


def worker_text(queue: Optional[str], image: str) -> str:
    if queue:
        return (f"Submissions run in `{image}` on the organizers' own compute worker (queue `{queue}`). For this "
                "benchmark the organizers run that worker without network access and with nothing but the task's "
                "images in reach.\n")
    return (f"Submissions run in `{image}` on CodaBench's shared CPU queue. **That queue does not isolate the "
            "network**: a submitted model could reach the internet, so the hidden Test images are protected only by "
            "these rules and by review. The organizers of this benchmark are advised to run it on their own worker "
            "without network access.\n")


def stamp_text(stamps: List[str]) -> str:
    if not stamps:
        return "Corruptions: MedMNIST-C, generated with the `medmnistc` package (versions in the scoring output).\n"
    return ("> **TEST BUNDLE — " + "; ".join(stamps) + ".** Its scores are not MedMNIST-C results; it exists to test "
            "the platform flow.\n")


def blocks(dev: layout.CorruptedSet, test: layout.CorruptedSet, sizes: Sequence[int], doc: dict, queue: Optional[str],
           cap: Optional[int], stamps: List[str]) -> Dict[str, str]:
    return {"stamp": stamp_text(stamps), "columns": columns_text(), "datasets": B.datasets_table() + "\n",
            "sample": sample_text(dev, test), "resize": f"{layout.RESIZE_RULE}.\n",
            "corruptions": corruptions_text(test), "sizes": sizes_text(sizes),
            "limits": B.limits_text(doc.get("phases") or [], ("code",), queue, cap),
            "worker": worker_text(queue, str(doc.get("docker_image")))}


# ---------------------------------------------------------------------------------------------
# the bundle
# ---------------------------------------------------------------------------------------------

def _starting_kit(repo: Path, dest: Path, readme: str) -> None:
    dest.mkdir(parents=True)
    kit = repo / "starting_kit"
    for name in ("sample_code_submission", "train_sample_model.py"):
        src = kit / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=B.ignore_code)
        elif src.is_file():
            shutil.copy2(src, dest / name)
    B.copy_package(dest)
    if (repo / "pyproject.toml").is_file():
        shutil.copy2(repo / "pyproject.toml", dest / "pyproject.toml")
    (dest / "README.md").write_text(readme, encoding="utf-8")


def build(options: RobustnessBundleOptions, *, log: Callable[[str], None] = print) -> RobustnessBundleResult:

    o = options
    dev, test, sizes, start, stamps = _check(o)
    repo = Path(o.repo)
    home = repo / HOME
    for needed in (home / "competition.yaml", home / "pages", home / "scoring_program", repo / "ingestion_program",
                   repo / "logo.png"):
        if not needed.exists():
            raise UsageError([Problem(f"missing {needed.relative_to(repo)}", file=str(repo))])
    fields = {"organizer": o.organizer, "contact_email": o.contact_email}
    missing = set()
    for page in sorted((home / "pages").glob("*.md")):
        missing.update(f for f in B.unfilled_fields(page.read_text(encoding="utf-8")) if not fields.get(f))
    if missing:
        opts = ", ".join(f"--{f.replace('_', '-')}" for f in sorted(missing))
        raise UsageError([Problem(f"the pages need {opts} (fields {', '.join(sorted(missing))} are unfilled)")])
    if o.verify:
        for cs in (dev, test):
            cs.verify()
    template = B.load_yaml(home / "competition.yaml")
    doc, changes = render_competition(template, docker_image=o.docker_image, queue=o.queue, start=start,
                                      contact_email=o.contact_email, stamps=stamps, sizes=sizes)
    cap = limits.default_cap(o.queue) if o.platform_cap is None else int(o.platform_cap)
    lim = limits.phase_limits(doc.get("phases") or [], cap)
    out = Path(o.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", suffix=".staging", dir=out.parent))
    pooled: Dict[str, Dict[str, int]] = {}
    try:
        for cs, folder in ((dev, "dev"), (test, "final")):
            write_task(cs, stage / folder, sizes, log=log)
            pooled[cs.split] = {f: cs.rows(f) for f in registry.flags()}
        B.copy_program(home / "scoring_program", stage / "scoring_program")
        changes += B._rewrite_yaml_config(stage / "scoring_program" / "config.yaml",
                                          {"resolutions": list(sizes), "benchmark": BENCHMARK}, "# set by big bundle\n")
        B.copy_program(repo / "ingestion_program", stage / "ingestion_program")
        changes += B._rewrite_yaml_config(
            stage / "ingestion_program" / "config.yaml",
            {"time_budget_s": lim.budget, "platform_cap_s": cap, "data_dir": None},
            f"# {lim.budget_comment()}; BIG-C: no /app/data fallback (its images exist only in input_data)\n")
        kit_readme = (home / "starting_kit_README.md").read_text(encoding="utf-8")
        blk = blocks(dev, test, sizes, doc, o.queue, cap, stamps)
        _starting_kit(repo, stage / "starting_kit", B.fill_blocks(kit_readme, blk))
        shutil.copy2(repo / "logo.png", stage / "logo.png")
        (stage / "pages").mkdir()
        for page in sorted((home / "pages").glob("*.md")):
            text = B.fill_fields(B.fill_blocks(page.read_text(encoding="utf-8"), blk), fields)
            (stage / "pages" / page.name).write_text(text, encoding="utf-8")
        (stage / "competition.yaml").write_text(B.dump_competition(doc), encoding="utf-8")
        findings, contents, folder = B.lint_zip_keep(stage, out, o.keep_folder, log)
        return RobustnessBundleResult(zip_path=out, folder=folder, changes=changes, contents=contents,
                                      findings=findings, test_bundle=bool(stamps), input_sizes=list(sizes),
                                      pooled=pooled)
    finally:
        if stage.exists():
            shutil.rmtree(stage)


def print_result(res: RobustnessBundleResult, log: Callable[[str], None] = print) -> None:
    log("changed from the template (robustness/competition.yaml):")
    for c in res.changes or ["(nothing)"]:
        log(f"  {c}")
    log("contents (uncompressed):")
    for name, n, size in B.summarize_contents(res.contents):
        log(f"  {B._human(size):>10}  {name}" + (f"  ({n} files)" if n > 1 else ""))
    for s, size in res.bytes_per_size().items():
        log(f"input images at {s} px (Development + Test): {B._human(size)} uncompressed")
    for split, counts in res.pooled.items():
        log(f"{split}: {sum(counts.values()):,} pooled images per size")
    total = sum(s for _, s in res.contents)
    log(f"bundle {res.zip_path}: {B._human(res.zip_bytes)} zipped, {B._human(total)} unzipped"
        + (" — TEST BUNDLE (stand-in / synthetic / incomplete)" if res.test_bundle else ""))
    log(f"lint: no errors, {sum(f.level != 'error' for f in res.findings)} warning(s)")
