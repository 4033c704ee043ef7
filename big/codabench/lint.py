"""``big lint BUNDLE``: check a CodaBench bundle (zip or folder) before uploading it.

Implements every rule of the pre-upload checklist (reference codabench.md §4.1) that the files can
show, as the v2 unpacker really parses them, plus the BIG rules: the scores.json keys equal the
non-computed leaderboard column keys, and no labels anywhere a participant can download (input
data, starting kit, solutions, public data and, with make_programs_available, the programs).
One finding per line; errors make the exit code non-zero, warnings do not.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Dict, Iterable, List, Optional, Set, Tuple, Union

from .. import limits, registry
from . import dates

PathLike = Union[str, os.PathLike]
ERROR, WARNING = "error", "warning"
SUBMISSION_RULES = ("Add", "Add_And_Delete", "Add_And_Delete_Multiple", "Force_Last", "Force_Latest_Multiple",
                    "Force_Best")
COMPUTATIONS = ("avg", "sum", "min", "max")
FACT_KEYS = {"key", "type", "title", "selection", "is_required", "is_on_leaderboard"}
FACT_TYPES = ("checkbox", "text", "select")
REQUIRED = ("title", "image", "terms", "pages", "tasks", "phases", "leaderboards")
BOOL_KEYS = ("registration_auto_approve", "enable_detailed_results", "show_detailed_results_in_submission_panel",
             "show_detailed_results_in_leaderboard", "auto_run_submissions", "can_participants_make_submissions_public",
             "make_programs_available", "make_input_data_available", "forum_enabled")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?$")
FIELD_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
EMAIL_RE = re.compile(r"^[^@\s{}]+@[^@\s{}]+\.[A-Za-z]{2,}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
PNG_MAGIC, JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
#: images without torch: the code track's ingestion program cannot run a torch model there
NO_TORCH_IMAGES = ("codalab/codalab-legacy:py37", "codalab/codalab-legacy:py39", "codalab/codalab-legacy:py312",
                   "codalab/codalab-legacy:py3")
UPLOAD_QUOTA = 15e9  # DEFAULT_USER_QUOTA
WORKER_CACHE = 10e9  # MAX_CACHE_DIR_SIZE_GB


@dataclass(frozen=True)
class Finding:
    level: str  # error | warning
    rule: str  # rule family: structure, version, keys, files, fields, tasks, programs, phases, leaderboard,
    #            columns, fact_sheet, scores, labels, big
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: [{self.rule}] {self.where}: {self.message}"


class _Lint:
    def __init__(self, root: Path, sizes: Optional[Dict[str, int]] = None):
        self.root = root
        self.findings: List[Finding] = []
        #: true sizes of members extracted only partly from a zip (large image arrays: header only)
        self.sizes = sizes or {}

    def size(self, path: Path) -> int:
        rel = path.relative_to(self.root).as_posix() if path.is_absolute() else path.as_posix()
        return self.sizes.get(rel, path.stat().st_size)

    def err(self, rule: str, where: str, msg: str) -> None:
        self.findings.append(Finding(ERROR, rule, where, msg))

    def warn(self, rule: str, where: str, msg: str) -> None:
        self.findings.append(Finding(WARNING, rule, where, msg))

    # -- paths ----------------------------------------------------------------------------
    def resolve(self, ref, where: str, rule: str = "files") -> Optional[Path]:
        """A bundle-relative path that must exist (folder or zip). None (and an error) otherwise."""
        if not isinstance(ref, str) or not ref.strip():
            self.err(rule, where, f"expected a path relative to the bundle root, found {ref!r}")
            return None
        pure = PurePosixPath(ref)
        if pure.is_absolute() or ".." in pure.parts:
            self.err(rule, where, f"{ref!r} must be relative to the bundle root, without '..'")
            return None
        path = self.root / pure
        if not path.exists():
            self.err(rule, where, f"{ref!r} does not exist in the bundle (CodaBench would look it up as a "
                                  "dataset key and fail with 'Cannot find dataset')")
            return None
        return path


def _zip_root_names(path: Path) -> Set[str]:
    with zipfile.ZipFile(path) as zf:
        return {n.split("/")[0] for n in zf.namelist()}


def _names_at_root(path: Path) -> Set[str]:
    if path.is_dir():
        return {p.name for p in path.iterdir()}
    return _zip_root_names(path)


def _read_at_root(path: Path, name: str) -> Optional[bytes]:
    if path.is_dir():
        f = path / name
        return f.read_bytes() if f.is_file() else None
    with zipfile.ZipFile(path) as zf:
        try:
            return zf.read(name)
        except KeyError:
            return None


def _phase_date(L: "_Lint", ph: dict, key: str, where: str) -> Optional[_dt.datetime]:
    """The date CodaBench stores for ``ph[key]`` (its get_datetime), with a finding when that is not
    what the organizer wrote, or when CodaBench cannot read it at all."""
    value = ph[key]
    try:
        stored = dates.codabench_datetime(value)
    except dates.DateError as exc:
        L.err("phases", f"{where}.{key}", f"{exc}: the upload fails ('Unpacking the bundle failed'); write "
                                          "'YYYY-MM-DD HH:MM:SS' (UTC, quoted)")
        return None
    written, how = dates.intended_datetime(value)
    if written is not None and written != stored:
        if isinstance(value, _dt.datetime):
            why = "CodaBench reads an unquoted YAML date-time as a date and cuts it to midnight"
        else:
            why = "CodaBench replaces the UTC offset by UTC instead of converting it"
        L.warn("phases", f"{where}.{key}", f"written as {written} UTC ({how}) but CodaBench stores {stored} UTC: {why}; "
                                           f"write {key}: '{dates.format_utc(written)}' (quoted)")
    elif isinstance(value, str) and not DATE_RE.match(value.strip()):
        L.warn("phases", f"{where}.{key}", f"{value!r} is stored as {stored} UTC (dashed dates parse month-first, "
                                           "offsets are dropped): write UTC as 'YYYY-MM-DD HH:MM:SS' (quoted)")
    return stored


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ---------------------------------------------------------------------------------------------
# rule families
# ---------------------------------------------------------------------------------------------

def _check_top(L: _Lint, doc: dict) -> None:
    v = doc.get("version")
    if "version" not in doc:
        L.err("version", "competition.yaml", "no `version: 2`: CodaBench would parse it as a v1.5 bundle and fail "
                                             "with 'HTML pages could not be found in the yaml file'")
    elif isinstance(v, bool) or str(v) != "2":
        L.err("version", "competition.yaml", f"version is {v!r}; only 2 (or \"2\") selects the v2 unpacker")
    if "leaderboard" in doc and "leaderboards" not in doc:
        L.err("keys", "competition.yaml", "`leaderboard:` (singular) is ignored by CodaBench; the key is `leaderboards:`")
    for k in REQUIRED:
        if k not in doc:
            L.err("keys", "competition.yaml", f"required key `{k}` is missing")
    title = doc.get("title")
    if "title" in doc and (not isinstance(title, str) or not title.strip() or len(title) > 256):
        L.err("keys", "title", "must be a non-empty string of at most 256 characters")
    elif isinstance(title, str) and "SYNTHETIC" in title.upper():
        L.warn("fields", "title", "the title says SYNTHETIC DATA: upload this bundle for testing only")
    for k in BOOL_KEYS:
        if k in doc and not isinstance(doc[k], bool):
            L.err("keys", k, f"must be true or false, found {doc[k]!r}")
    img = doc.get("docker_image")
    if img is None:
        L.warn("keys", "docker_image", "not set: CodaBench uses codalab/codalab-legacy:py37")
    elif not isinstance(img, str) or len(img) > 128 or not img.strip():
        L.err("keys", "docker_image", "must be an image name of at most 128 characters")
    q = doc.get("queue")
    if q is not None and (not isinstance(q, str) or not UUID_RE.match(q)):
        L.err("keys", "queue", f"{q!r} is not a queue vhost UUID")
    email = doc.get("contact_email")
    if email is not None and (not isinstance(email, str) or not EMAIL_RE.match(email)):
        L.err("fields", "contact_email", f"{email!r} is not an e-mail address (unfilled? `big bundle --contact-email`)")
    if doc.get("make_programs_available") is not True:
        L.warn("keys", "make_programs_available", "false: reviewers cannot download the scoring program")
    if doc.get("enable_detailed_results") is not True:
        L.warn("keys", "enable_detailed_results", "false: detailed_results.html is not shown")
    for k in ("end_date", "published", "allow_robot_submissions"):
        if k in doc:
            L.warn("keys", k, "not read by the v2 unpacker (ignored)")


def _check_files(L: _Lint, doc: dict) -> None:
    if "image" in doc:
        p = L.resolve(doc["image"], "image")
        if p is not None:
            head = p.read_bytes()[:8] if p.is_file() else b""
            if not (head.startswith(PNG_MAGIC) or head.startswith(JPEG_MAGIC)):
                L.err("files", "image", f"{doc['image']!r} is not a PNG or JPEG image")
            elif p.stat().st_size > 5_000_000:
                L.warn("files", "image", "the logo is larger than 5 MB")
    texts = []
    if "terms" in doc:
        p = L.resolve(doc["terms"], "terms")
        if p is not None:
            if not p.is_file() or not p.read_text(encoding="utf-8", errors="replace").strip():
                L.err("files", "terms", f"{doc['terms']!r} is empty or not a file")
            else:
                texts.append((doc["terms"], p))
    pages = doc.get("pages")
    if "pages" in doc and not isinstance(pages, list):
        L.err("files", "pages", "must be a list of {title, file}")
        pages = []
    for i, page in enumerate(pages or []):
        where = f"pages[{i}]"
        if not isinstance(page, dict) or "file" not in page or "title" not in page:
            L.err("files", where, "each page needs `title` and `file`")
            continue
        if not isinstance(page["title"], str) or not page["title"].strip() or len(page["title"]) > 255:
            L.err("files", where, "title must be a non-empty string of at most 255 characters")
        p = L.resolve(page["file"], where)
        if p is None:
            continue
        if not p.is_file() or not p.read_text(encoding="utf-8", errors="replace").strip():
            L.err("files", where, f"{page['file']!r} is empty or not a file (CodaBench rejects empty pages)")
        else:
            texts.append((page["file"], p))
    for name, p in texts:
        text = p.read_text(encoding="utf-8", errors="replace")
        for f in sorted(set(FIELD_RE.findall(text))):
            L.err("fields", name, f"unfilled field {{{{{f}}}}} (`big bundle --{f.replace('_', '-')} ...`)")
        if "<!-- BEGIN big:" in text and re.search(r"<!-- BEGIN big:(\w+) -->\n<!-- END big:\1 -->", text):
            L.err("fields", name, "an empty generated block: build the bundle with `big bundle`")


def _check_program(L: _Lint, path: Path, where: str, *, required_command: bool = True) -> None:
    try:
        names = _names_at_root(path)
    except zipfile.BadZipFile:
        L.err("programs", where, f"{path.name} is not a zip file")
        return
    meta_name = "metadata.yaml" if "metadata.yaml" in names else ("metadata" if "metadata" in names else None)
    if meta_name is None:
        inner = sorted(names)
        hint = f" (the zip holds the folder {inner[0]!r}: zip its contents)" if len(inner) == 1 else ""
        L.err("programs", where, f"no metadata.yaml or metadata at the program's root{hint}")
        return
    import yaml

    raw = _read_at_root(path, meta_name) or b""
    try:
        meta = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        L.err("programs", f"{where}/{meta_name}", f"not valid YAML: {exc}")
        return
    cmd = meta.get("command") if isinstance(meta, dict) else None
    if required_command and (not isinstance(cmd, str) or not cmd.strip()):
        L.err("programs", f"{where}/{meta_name}", "no `command:`; the worker would run nothing")
        return
    if isinstance(cmd, str) and any(tok in cmd for tok in ("&&", "|", ";", ">")) and not cmd.strip().startswith(
            ("bash -c", "sh -c")):
        L.err("programs", f"{where}/{meta_name}", f"command {cmd!r} needs a shell, but the worker runs it without "
                                                   "one (wrap it in bash -c '...')")


def _check_tasks(L: _Lint, doc: dict) -> Dict[int, dict]:
    tasks = doc.get("tasks")
    by_index: Dict[int, dict] = {}
    if "tasks" in doc and (not isinstance(tasks, list) or not tasks):
        L.err("tasks", "tasks", "must be a non-empty list")
        return by_index
    for i, t in enumerate(tasks or []):
        where = f"tasks[{i}]"
        if not isinstance(t, dict):
            L.err("tasks", where, "must be a mapping")
            continue
        idx = t.get("index")
        if not _is_int(idx):
            L.err("tasks", where, f"index must be an int, found {idx!r}")
            continue
        if idx in by_index:
            L.err("tasks", where, f"duplicate task index {idx}")
            continue
        by_index[idx] = t
        if "key" in t:
            L.warn("tasks", where, "`key` reuses an existing task: every other field is ignored")
            continue
        if not isinstance(t.get("name"), str) or not t["name"].strip():
            L.err("tasks", where, "needs a `name` (at most 256 characters)")
        if "scoring_program" not in t:
            L.err("tasks", where, "has no scoring_program")
        if "is_public" in t:
            L.warn("tasks", where, "`is_public` is ignored by the v2 unpacker")
        for key in ("scoring_program", "ingestion_program", "reference_data", "input_data"):
            if key not in t:
                continue
            p = L.resolve(t[key], f"{where}.{key}", rule="tasks")
            if p is None:
                continue
            if p.is_file() and not zipfile.is_zipfile(p):
                L.err("tasks", f"{where}.{key}", f"{t[key]!r} must be a folder or a zip")
                continue
            if key.endswith("_program"):
                _check_program(L, p, f"{where}.{key}")
            elif p.is_file():
                names = _zip_root_names(p)
                if len(names) == 1 and next(iter(names)) and not any("." in n for n in names):
                    L.warn("tasks", f"{where}.{key}", f"the zip holds only the folder {next(iter(names))!r}: "
                                                      "CodaBench mounts the zip root")
        if t.get("reference_data") is not None and t.get("reference_data") == t.get("input_data"):
            L.err("labels", where, "reference_data and input_data are the same path: the labels would reach "
                                   "the participant's code")
    return by_index


def _check_phases(L: _Lint, doc: dict, tasks: Dict[int, dict], cap: Optional[int]) -> None:
    phases = doc.get("phases")
    if "phases" in doc and (not isinstance(phases, list) or not phases):
        L.err("phases", "phases", "must be a non-empty list")
        return
    phases = [p for p in phases or [] if isinstance(p, dict)]
    order = sorted(range(len(phases)), key=lambda i: phases[i].get("index", 0) if _is_int(phases[i].get("index", 0)) else 0)
    prev_end = None
    prev_name = None
    for pos, i in enumerate(order):
        ph = phases[i]
        where = f"phases[{i}] ({ph.get('name', '?')})"
        if not isinstance(ph.get("name"), str) or not ph["name"].strip():
            L.err("phases", where, "needs a `name`")
        # dates as CodaBench stores them (an unquoted YAML date-time is cut to midnight)
        start = _phase_date(L, ph, "start", where) if "start" in ph else None
        end = _phase_date(L, ph, "end", where) if "end" in ph else None
        if "start" not in ph:
            L.err("phases", where, "needs a `start` date")
        last = pos == len(order) - 1
        if not last and "end" not in ph:
            L.err("phases", where, "every phase but the last needs an `end`")
        if end is not None and end < _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None, microsecond=0):
            L.warn("phases", where, f"ended on {end} (UTC): move the dates (`big bundle --start`)")
        if start is not None and end is not None and end <= start:
            L.err("phases", where, f"ends ({end}) before it starts ({start}), as CodaBench stores the dates")
        if prev_end is not None and start is not None:
            if start == prev_end:
                L.err("phases", where, f"starts at the same instant the previous phase ({prev_name}) ends, as CodaBench "
                                       f"stores the dates ({start} UTC): 'Phases dates conflict'; quote the dates and "
                                       "start one second later")
            elif start < prev_end:
                L.err("phases", where, f"starts ({start}) before the previous phase ({prev_name}) ends ({prev_end}): "
                                       "'Phases must be sequential'")
        prev_end, prev_name = end, ph.get("name")
        for key, default in (("max_submissions_per_day", 5), ("max_submissions", 100), ("execution_time_limit", 600)):
            if key not in ph:
                L.err("phases", where, f"`{key}` is not set (CodaBench's default is {default}); set it explicitly")
            elif not _is_int(ph[key]) or ph[key] < 0:
                L.err("phases", where, f"`{key}` must be a non-negative int, found {ph[key]!r}")
        if "max_submissions_per_person" in ph:
            L.err("phases", where, "`max_submissions_per_person` is ignored by the unpacker; the key is `max_submissions`")
        for key in ("accepts_only_result_submissions", "solutions"):
            if key in ph:
                L.warn("phases", where, f"`{key}` is ignored by the v2 unpacker")
        limit = ph.get("execution_time_limit")
        if _is_int(limit) and cap is not None and limit > cap:
            L.warn("phases", where, f"execution_time_limit {limit} s exceeds the default queue's cap ({cap} s): CodaBench "
                                    f"runs this phase's jobs for min({cap}, {limit}) = {cap} s; set it to {cap} s, or use "
                                    "your own `queue` (`big bundle --queue`), and rebuild")
        if ph.get("auto_migrate_to_this_phase") and pos == 0:
            L.err("phases", where, "auto_migrate_to_this_phase is not allowed on the first phase")
        pt = ph.get("tasks")
        if not isinstance(pt, list) or not pt:
            L.err("phases", where, "needs `tasks:` (a list of task indexes)")
        else:
            for ti in pt:
                if ti not in tasks:
                    L.err("phases", where, f"task index {ti!r} does not exist (upload would crash with KeyError)")
            if len(pt) > 1:
                L.warn("phases", where, "several tasks in one phase: CodaBench's multi-task leaderboards are "
                                        "buggy (n/a scores, #2211); use one task per phase")
        for key in ("starting_kit", "public_data"):
            if key in ph:
                L.resolve(ph[key], f"{where}.{key}", rule="phases")


def _check_leaderboards(L: _Lint, doc: dict) -> Optional[List[dict]]:
    boards = doc.get("leaderboards")
    if "leaderboards" in doc and (not isinstance(boards, list) or not boards):
        L.err("leaderboard", "leaderboards", "must be a non-empty list")
        return None
    if not boards:
        return None
    if len(boards) > 1:
        L.warn("leaderboard", "leaderboards", "only leaderboards[0] is attached to the phases")
    lb = boards[0]
    if not isinstance(lb, dict):
        L.err("leaderboard", "leaderboards[0]", "must be a mapping")
        return None
    title, key = lb.get("title"), lb.get("key")
    if not isinstance(title, str) or not title.strip() or len(title) > 64:
        L.err("leaderboard", "leaderboards[0].title", "must be a non-empty string of at most 64 characters")
    if not isinstance(key, str) or not key.strip() or len(key) > 36:
        L.err("leaderboard", "leaderboards[0].key", "must be a non-empty string of at most 36 characters")
    rule = lb.get("submission_rule")
    if rule is None:
        L.err("leaderboard", "leaderboards[0].submission_rule", "not set: the default `Add` is rarely what you "
                                                                "want; choose it explicitly")
    elif rule not in SUBMISSION_RULES:
        L.err("leaderboard", "leaderboards[0].submission_rule", f"{rule!r} is not one of {', '.join(SUBMISSION_RULES)}")
    cols = lb.get("columns")
    if not isinstance(cols, list) or not cols:
        L.err("columns", "leaderboards[0].columns", "at least one column is needed")
        return None
    indexes, keys = {}, set()
    for i, c in enumerate(cols):
        where = f"columns[{i}]"
        if not isinstance(c, dict):
            L.err("columns", where, "must be a mapping")
            continue
        where = f"columns[{i}] ({c.get('key')})"
        for k in ("title", "key"):
            v = c.get(k)
            if not isinstance(v, str) or not v.strip():
                L.err("columns", where, f"needs a `{k}`")
            elif len(v) > 36:
                L.err("columns", where, f"{k} {v!r} has {len(v)} characters; CodaBench allows 36")
        idx = c.get("index")
        if not _is_int(idx) or idx < 0:
            L.err("columns", where, f"index must be a non-negative int, found {idx!r}")
        elif idx in indexes:
            L.err("columns", where, f"duplicate column index {idx}")
        else:
            indexes[idx] = c
        if c.get("key") in keys:
            L.err("columns", where, f"duplicate column key {c.get('key')!r}")
        keys.add(c.get("key"))
        if c.get("sorting", "desc") not in ("asc", "desc"):
            L.err("columns", where, f"sorting must be asc or desc, found {c.get('sorting')!r}")
        if "sorting" not in c:
            L.warn("columns", where, "no explicit `sorting` (desc assumed)")
        if "precision" in c and (not _is_int(c["precision"]) or c["precision"] < 0):
            L.err("columns", where, f"precision must be a non-negative int, found {c['precision']!r}")
    for i, c in enumerate(cols):
        if not isinstance(c, dict) or c.get("computation") is None:
            continue
        where = f"columns[{i}] ({c.get('key')})"
        if c["computation"] not in COMPUTATIONS:
            L.err("columns", where, f"computation must be one of {', '.join(COMPUTATIONS)}")
        ci = c.get("computation_indexes")
        if not isinstance(ci, list) or not ci or not all(_is_int(x) for x in ci):
            L.err("columns", where, f"computation_indexes must be a YAML list of ints, found {ci!r}")
        else:
            if c.get("index") in ci:
                L.err("columns", where, "computation_indexes includes the column's own index")
            for x in ci:
                if x not in indexes:
                    L.err("columns", where, f"computation index {x} does not exist")
    primary = lb.get("primary_index", 0)
    if primary not in indexes:
        L.err("columns", "leaderboards[0].primary_index", f"no column has index {primary!r}: ranking would break")
    return [c for c in cols if isinstance(c, dict)]


def _check_fact_sheet(L: _Lint, doc: dict) -> None:
    fs = doc.get("fact_sheet")
    if fs is None:
        return
    if not isinstance(fs, dict):
        L.err("fact_sheet", "fact_sheet", "must be a mapping of question key -> question")
        return
    for qkey, q in fs.items():
        where = f"fact_sheet.{qkey}"
        if not isinstance(q, dict):
            L.err("fact_sheet", where, "must be a mapping")
            continue
        diff = set(q) ^ FACT_KEYS
        if diff:
            L.err("fact_sheet", where, f"needs exactly the keys {', '.join(sorted(FACT_KEYS))}; "
                                       f"wrong: {', '.join(sorted(map(str, diff)))}")
        if q.get("key") != qkey:
            L.err("fact_sheet", where, f"key {q.get('key')!r} must equal the mapping key {qkey!r}")
        typ = q.get("type")
        if typ not in FACT_TYPES:
            L.err("fact_sheet", where, f"type must be one of {', '.join(FACT_TYPES)}, found {typ!r}")
        sel = q.get("selection")
        if typ == "text" and sel != "":
            L.err("fact_sheet", where, f"a text question needs selection: \"\", found {sel!r}")
        if typ == "checkbox" and sel != [True, False]:
            L.err("fact_sheet", where, f"a checkbox needs selection: [true, false], found {sel!r}")
        if typ == "select" and (not isinstance(sel, list) or not sel or not all(isinstance(s, str) for s in sel)):
            L.err("fact_sheet", where, f"a select needs a list of strings, found {sel!r}")
        for flag in ("is_required", "is_on_leaderboard"):
            v = q.get(flag)
            if isinstance(v, bool):
                L.err("fact_sheet", where, f"{flag} is the boolean {v}; CodaBench compares with the string 'true': "
                                           f"quote it (\"{str(v).lower()}\")")
            elif v not in ("true", "false"):
                L.err("fact_sheet", where, f"{flag} must be the string \"true\" or \"false\", found {v!r}")


def _benchmark(L: _Lint, tasks: Dict[int, dict]) -> str:
    """"big", or "robustness" when the scoring programs' config.yaml say ``benchmark: robustness`` (BIG-C)."""
    import yaml

    found = set()
    for t in tasks.values():
        ref = t.get("scoring_program")
        cfg = L.root / ref / "config.yaml" if isinstance(ref, str) else None
        if cfg is not None and cfg.is_file():
            try:
                m = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                continue
            found.add(str(m.get("benchmark", "big")) if isinstance(m, dict) else "big")
    return "robustness" if "robustness" in found else "big"


def _check_scores(L: _Lint, cols: Optional[List[dict]], tasks: Dict[int, dict]) -> None:
    if cols is None:
        return
    plain = [c.get("key") for c in sorted(cols, key=lambda c: c.get("index", 0) if _is_int(c.get("index")) else 0)
             if c.get("computation") is None]
    expected, primary = registry.score_keys(), "auc"
    if _benchmark(L, tasks) == "robustness":  # BIG-C: its own score table (big.robustness.columns)
        from ..robustness import columns as robustness_columns

        expected, primary = robustness_columns.score_keys(), robustness_columns.PRIMARY
    missing = [k for k in expected if k not in plain]
    extra = [k for k in plain if k not in expected]
    if missing:
        L.err("scores", "leaderboards[0].columns", f"the scoring program writes {', '.join(missing)} but no column has "
                                                   "that key (the value would be dropped)")
    if extra:
        L.err("scores", "leaderboards[0].columns", f"column(s) {', '.join(map(str, extra))} are not in scores.json: "
                                                   "they would show n/a and could rank first")
    if not missing and not extra and plain != expected:
        L.warn("scores", "leaderboards[0].columns", "columns are not in the order of big.registry.score_keys()")
    if plain and plain[0] != primary and not missing:
        L.warn("scores", "leaderboards[0].columns", f"the first column is not {primary!r}, the benchmark's ranking "
                                                    "metric")
    ours = registry.REGISTRY_PATH.read_bytes()
    for idx, t in sorted(tasks.items()):
        ref = t.get("scoring_program")
        p = L.root / ref if isinstance(ref, str) else None
        if p is not None and p.is_dir():
            bundled = p / "big" / "registry.json"
            if not bundled.is_file():
                L.err("programs", f"tasks[{idx}].scoring_program", "has no big/ package beside score.py: it cannot "
                                                                  "run in the container (build with `big bundle`)")
            elif bundled.read_bytes() != ours:
                L.err("scores", f"tasks[{idx}].scoring_program", "its big/registry.json differs from this "
                                                                "checkout's: the score keys may differ")
            cfg = p / "config.yaml"
            if cfg.is_file():
                import yaml

                try:
                    res = (yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}).get("resolutions", registry.SIZES)
                except yaml.YAMLError as exc:
                    L.err("programs", f"tasks[{idx}].scoring_program/config.yaml", f"not valid YAML: {exc}")
                    continue
                if not isinstance(res, list) or not res or any(r not in registry.SIZES for r in res):
                    L.err("programs", f"tasks[{idx}].scoring_program/config.yaml",
                          f"resolutions {res!r} must be a list of MedMNIST+ sizes {list(registry.SIZES)}")


# -- labels ----------------------------------------------------------------------------------

def _npy_shape(fh):
    import numpy as np

    major, _ = np.lib.format.read_magic(fh)
    reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, _, dtype = reader(fh)
    return tuple(shape), dtype


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _walk(path: Path) -> Iterable[Path]:
    if path.is_file():
        yield path
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for f in sorted(filenames):
            yield Path(dirpath) / f


def _labelish_members(zf: zipfile.ZipFile) -> List[str]:
    return [n for n in zf.namelist() if re.search(r"(^|[/_])labels?(\.npy)?$", n) or n.endswith("_labels.npy")]


def _check_labels(L: _Lint, doc: dict, tasks: Dict[int, dict]) -> None:
    """Nothing a participant can download may hold labels."""
    # what participants can download, and what only the scoring job sees
    downloadable: Dict[str, str] = {}
    ref_paths: Set[Path] = set()
    for idx, t in tasks.items():
        if isinstance(t.get("input_data"), str):
            downloadable[t["input_data"]] = f"tasks[{idx}].input_data (read by participant code)"
        if isinstance(t.get("reference_data"), str):
            ref_paths.add((L.root / t["reference_data"]).resolve())
        if doc.get("make_programs_available"):
            for k in ("scoring_program", "ingestion_program"):
                if isinstance(t.get(k), str):
                    downloadable[t[k]] = f"tasks[{idx}].{k} (make_programs_available)"
    for i, ph in enumerate(doc.get("phases") or []):
        if isinstance(ph, dict):
            for k in ("starting_kit", "public_data"):
                if isinstance(ph.get(k), str):
                    downloadable[ph[k]] = f"phases[{i}].{k}"
    for i, s in enumerate(doc.get("solutions") or []):
        if isinstance(s, dict) and isinstance(s.get("path"), str):
            downloadable[s["path"]] = f"solutions[{i}]"
    ref_hashes: Dict[str, str] = {}
    for rp in ref_paths:
        if rp.exists():
            for f in _walk(rp):
                if f.suffix == ".npy" or f.suffix == ".csv":
                    ref_hashes[_sha256(f)] = f"{rp.name}/{f.relative_to(rp).as_posix()}" if rp.is_dir() else rp.name
    for ref, what in sorted(downloadable.items()):
        base = (L.root / ref)
        if not base.exists():
            continue
        if base.resolve() in ref_paths:
            L.err("labels", what, f"{ref!r} is a reference_data path: participants could download the labels")
            continue
        is_input = what.endswith("(read by participant code)")
        for f in _walk(base):
            rel = f.relative_to(L.root).as_posix()
            low = f.name.lower()
            try:
                if low.endswith(".npz"):
                    with zipfile.ZipFile(f) as zf:
                        members = _labelish_members(zf)
                    if members:
                        L.err("labels", what, f"{rel} holds label arrays ({', '.join(members[:3])})")
                    elif is_input:
                        L.err("labels", what, f"{rel}: input data must be {{flag}}_{{size}}.npy image files")
                    continue
                if low.endswith(".zip") and zipfile.is_zipfile(f):
                    with zipfile.ZipFile(f) as zf:
                        members = [n for n in zf.namelist() if n.endswith(".npz") or "label" in n.lower()]
                    if members:
                        L.err("labels", what, f"{rel} contains {', '.join(members[:3])}: no labels may be downloadable")
                    continue
                if low.endswith(".npy"):
                    with open(f, "rb") as fh:
                        shape, dtype = _npy_shape(fh)
                    labelish = len(shape) == 2 and shape[1] in (1, 14) and dtype.kind in "uib"
                    if labelish or "label" in low:
                        L.err("labels", what, f"{rel} is shaped like labels ({dtype} {shape})")
                    elif is_input:
                        m = re.match(r"^([a-z]+)_(\d+)\.npy$", f.name)
                        ok = m and m.group(1) in registry.flags() and int(m.group(2)) in registry.SIZES
                        if not ok:
                            L.err("labels", what, f"{rel}: input data holds only {{flag}}_{{size}}.npy image files")
                        else:
                            want = registry.get(m.group(1)).image_shape(int(m.group(2)))
                            if tuple(shape[1:]) != want or dtype.str != "|u1":
                                L.err("labels", what, f"{rel} is {dtype} {shape}, expected uint8 images (n, "
                                                      f"{', '.join(map(str, want))})")
                if low == "manifest.json":
                    try:
                        man = json.loads(f.read_text(encoding="utf-8"))
                    except ValueError:
                        man = None
                    if isinstance(man, dict) and str(man.get("format", "")).startswith(("big-reference", "big-c-reference")):
                        L.err("labels", what, f"{rel} is a reference-data manifest: the labels are here")
                if "label" in low and low.endswith((".csv", ".txt", ".json")):
                    L.err("labels", what, f"{rel}: a file named like labels")
                partial = f.relative_to(L.root).as_posix() in L.sizes
                if ref_hashes and not partial and f.stat().st_size > 0 and f.suffix in (".npy", ".csv"):
                    h = _sha256(f)
                    if h in ref_hashes:
                        L.err("labels", what, f"{rel} is byte-identical to the reference file {ref_hashes[h]}")
            except (OSError, ValueError, zipfile.BadZipFile) as exc:
                L.warn("labels", what, f"{rel} could not be inspected ({exc})")
    # synthetic reference data: warn
    for rp in sorted(ref_paths):
        man = rp / "manifest.json"
        if man.is_file():
            try:
                m = json.loads(man.read_text(encoding="utf-8"))
            except ValueError:
                L.err("labels", str(rp.relative_to(L.root)), "manifest.json is not valid JSON")
                continue
            if m.get("synthetic"):
                L.warn("fields", rp.relative_to(L.root).as_posix(), "reference data built from SYNTHETIC files: "
                                                                    "this bundle is for testing only")


def _ingestion_configs(L: _Lint, tasks: Dict[int, dict]) -> Dict[int, Optional[dict]]:
    """tasks[i] -> its ingestion program's config.yaml as a mapping (None: absent or unreadable)."""
    import yaml

    out: Dict[int, Optional[dict]] = {}
    for idx, t in sorted(tasks.items()):
        ref = t.get("ingestion_program")
        if not isinstance(ref, str):
            continue
        cfg = L.root / ref / "config.yaml"
        m = None
        if cfg.is_file():
            try:
                m = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                m = None
        out[idx] = m if isinstance(m, dict) else None
    return out


def resolve_cap(queue, recorded: Iterable) -> Tuple[Optional[int], Optional[Finding]]:
    """The cap CodaBench applies to a bundle's jobs, from the competition's ``queue`` and the
    ``platform_cap_s`` values `big bundle` recorded in its ingestion configs (none: CodaBench's
    default rule). Returns (cap, a finding when the two disagree). Used by lint and run-local."""
    values = set(recorded)
    where = "ingestion_program/config.yaml"
    if not values:
        return limits.default_cap(queue), None
    bad = [v for v in values if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0)]
    if bad or len(values) > 1:
        return limits.default_cap(queue), Finding(
            ERROR, "big", where, f"platform_cap_s {', '.join(sorted(map(repr, values)))} must be one positive number "
                                 "(or null for your own queue): rebuild with big bundle")
    value = values.pop()
    if queue and value is not None:
        return None, Finding(WARNING, "big", where, f"platform_cap_s is {value:g} s but competition.yaml sets a queue "
                                                    "(your own: no cap): rebuild with `big bundle --queue ...`")
    if not queue and value is None:
        return limits.DEFAULT_QUEUE_CAP_S, Finding(
            WARNING, "big", where, "platform_cap_s is null (own queue) but competition.yaml sets no queue: CodaBench's "
                                   f"default queue caps every job ({limits.DEFAULT_QUEUE_CAP_S} s in its code); rebuild")
    return (None if value is None else int(value)), None


def _platform_cap(L: _Lint, doc: dict, tasks: Dict[int, dict]) -> Optional[int]:
    """The cap of this bundle's jobs (big.limits): what `big bundle` recorded, checked against the queue."""
    recorded = [m["platform_cap_s"] for m in _ingestion_configs(L, tasks).values()
                if m is not None and "platform_cap_s" in m]
    cap, finding = resolve_cap(doc.get("queue"), recorded)
    if finding is not None:
        L.findings.append(finding)
    return cap


def _check_big(L: _Lint, doc: dict, tasks: Dict[int, dict], cap: Optional[int]) -> None:
    lim = limits.phase_limits([p for p in doc.get("phases") or [] if isinstance(p, dict)], cap)
    has_ingestion = False
    configs = _ingestion_configs(L, tasks)
    for idx, t in sorted(tasks.items()):
        ref = t.get("ingestion_program")
        if not isinstance(ref, str):
            continue
        has_ingestion = True
        where = f"tasks[{idx}].ingestion_program/config.yaml"
        m = configs.get(idx)
        if not (L.root / ref / "config.yaml").is_file():
            L.warn("big", f"tasks[{idx}].ingestion_program", "no config.yaml with time_budget_s (build with big bundle)")
        elif m is None:
            L.err("big", where, "not a valid YAML mapping")
        else:
            budget = m.get("time_budget_s")
            if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0:
                L.err("big", where, f"time_budget_s must be positive, found {budget!r}")
            elif lim.phases and budget >= lim.effective:
                L.err("big", where, f"time_budget_s {budget:g} is not below the effective limit {lim.effective} s "
                                    f"(min(cap, execution_time_limit)): the worker's own, unreliable limit would end "
                                    "the job before the ingestion program stops it with a clear message; rebuild "
                                    "with big bundle")
            elif lim.phases and budget != lim.budget:
                L.warn("big", where, f"time_budget_s {budget:g} differs from {lim.budget} s, the budget of the effective "
                                     f"limit {lim.effective} s minus {limits.margin_rule()}: rebuild the bundle after "
                                     "changing the queue or a limit")
        if not (L.root / ref / "big").is_dir():
            L.err("programs", f"tasks[{idx}].ingestion_program", "has no big/ package: it cannot run in the container")
    # sizes against CodaBench's quotas: 15 GB upload per user, 10 GB worker cache for the task data
    total = sum(L.size(f) for f in _walk(L.root))
    if total > UPLOAD_QUOTA:
        L.warn("big", "bundle", f"{total / 1e9:.1f} GB unzipped: above CodaBench's default 15 GB upload quota "
                                "(ask the platform for more, or use fewer --input-sizes)")
    for idx, t in sorted(tasks.items()):
        cached = 0
        for key in ("input_data", "reference_data"):
            ref = t.get(key)
            if isinstance(ref, str) and (L.root / ref).exists():
                cached += sum(L.size(f) for f in _walk(L.root / ref))
        if cached > WORKER_CACHE:
            L.warn("big", f"tasks[{idx}]", f"input and reference data take {cached / 1e9:.1f} GB: above the "
                                           "worker's 10 GB data cache (re-downloaded for every job)")
    img = doc.get("docker_image")
    if has_ingestion and isinstance(img, str) and img in NO_TORCH_IMAGES:
        L.warn("big", "docker_image", f"{img} has no torch: code submissions with torch models cannot run "
                                      "(codalab/codalab-legacy:gpu310 has torch 2.3.1)")


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------

def lint_folder(root: PathLike, *, sizes: Optional[Dict[str, int]] = None) -> List[Finding]:
    import yaml

    L = _Lint(Path(root).resolve(), sizes)  # resolved: reference paths are compared resolved
    comp = L.root / "competition.yaml"
    if not comp.is_file():
        subdirs = [p for p in L.root.iterdir() if p.is_dir() and (p / "competition.yaml").is_file()] \
            if L.root.is_dir() else []
        hint = (f"; it is in the folder {subdirs[0].name!r}: zip that folder's contents, not the folder"
                if subdirs else "")
        L.err("structure", str(root), "competition.yaml is missing from the bundle root" + hint)
        return L.findings
    try:
        doc = yaml.safe_load(comp.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        L.err("structure", "competition.yaml", f"not valid YAML: {exc}")
        return L.findings
    if not isinstance(doc, dict):
        L.err("structure", "competition.yaml", "must be a YAML mapping")
        return L.findings
    for f in sorted(set(FIELD_RE.findall(comp.read_text(encoding="utf-8")))):
        L.err("fields", "competition.yaml", f"unfilled field {{{{{f}}}}}")
    _check_top(L, doc)
    _check_files(L, doc)
    tasks = _check_tasks(L, doc)
    cap = _platform_cap(L, doc, tasks)
    _check_phases(L, doc, tasks, cap)
    cols = _check_leaderboards(L, doc)
    _check_fact_sheet(L, doc)
    _check_scores(L, cols, tasks)
    _check_labels(L, doc, tasks)
    _check_big(L, doc, tasks, cap)
    if _benchmark(L, tasks) == "robustness":
        from ..robustness.lintrules import check_robustness

        check_robustness(L, doc, tasks)
    return L.findings


#: .npy members larger than this are extracted as their first bytes only (the header is all lint reads;
#: label arrays are far smaller, so byte-identity with the reference is still checked for them)
PARTIAL_NPY_BYTES = 1 << 20
_HEADER_BYTES = 1 << 16


def _extract_for_lint(zf: zipfile.ZipFile, dest: Path) -> Dict[str, int]:
    """Unpack a bundle zip; large image arrays only as far as their header. Returns their true sizes."""
    partial: Dict[str, int] = {}
    for info in zf.infolist():
        target = dest / info.filename
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as out:
            if info.filename.endswith(".npy") and info.file_size > PARTIAL_NPY_BYTES:
                out.write(src.read(_HEADER_BYTES))
                partial[info.filename] = info.file_size
            else:
                shutil.copyfileobj(src, out, 1 << 20)
    return partial


def lint_bundle(bundle: PathLike) -> List[Finding]:
    """Lint a bundle zip or folder; a zip is checked for competition.yaml at its root, then unpacked."""
    path = Path(bundle)
    if path.is_dir():
        return lint_folder(path)
    if not path.is_file():
        return [Finding(ERROR, "structure", str(path), "no such file or folder")]
    if not zipfile.is_zipfile(path):
        return [Finding(ERROR, "structure", str(path), "not a zip file")]
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        bad = [n for n in names if n.startswith("/") or ".." in PurePosixPath(n).parts]
        if bad:
            return [Finding(ERROR, "structure", str(path), f"unsafe member paths: {', '.join(bad[:3])}")]
        if "competition.yaml" not in names:
            nested = [n for n in names if n.endswith("/competition.yaml")]
            hint = (f"; found {nested[0]!r}: the zip wraps a folder. Zip the folder's contents "
                    "(CodaBench: 'competition.yaml is missing from zip')" if nested else "")
            return [Finding(ERROR, "structure", str(path), "competition.yaml is not at the zip root" + hint)]
        tmp = Path(tempfile.mkdtemp(prefix="big-lint-"))
        try:
            sizes = _extract_for_lint(zf, tmp)
            findings = lint_folder(tmp, sizes=sizes)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return findings
