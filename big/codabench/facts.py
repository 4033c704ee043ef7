"""Every fact a competition states in more than one place, computed once (issue 11).

A *fact* is anything a participant reads on several pages, in the starting kit's README and in the
bundle's configuration: the accepted resolutions and the image sizes given to code submissions, the
code-track image and its packages (``big.imageenv``'s one table), the hardware and the network, the
effective time limits and the ingestion budget (``big.limits``), the bootstrap B of the scoring
program, the phase dates, the ranking column and the leaderboard rule, and the training rule.

* :func:`compute` builds :class:`Facts` from what ``big bundle`` decided (its options, the rendered
  competition.yaml and the programs' configs);
* :func:`from_bundle` reads the same facts back from a built bundle (folder), from the files the
  platform uses, so a test can compare both;
* :func:`render_blocks` turns facts into the text of every ``<!-- BEGIN big:NAME -->`` block of the
  pages and of the starting kit's README: the one rendering of each fact.

A second benchmark (another bundle built by the same machinery) calls the same three functions with
its own options and config; nothing here is specific to the main leaderboard except defaults.
Standard library plus PyYAML; no heavy imports.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from .. import imageenv, limits, registry
from . import dates

PathLike = Union[str, os.PathLike]
FACTS_FILE = "facts.json"
TRACKS = ("results", "code")
NETWORK = ("enabled", "disabled")
#: the rule of the Terms page, the one text of it everywhere (pages, starting kit, README)
TRAINING_RULE = (
    "**What you may train on.** Train on the **training splits**. Use the **validation splits for model "
    "selection only** (choosing models, hyper-parameters, thresholds, checkpoints, early stopping), not as "
    "training data. **Never use the test splits** for training or selection: not their labels, not their "
    "images (no fitting, tuning, ensembling, calibrating or self-training on them). The MedMNIST+ test "
    "labels ship with the `medmnist` package; using them in any way breaks these rules.")
RULES = {
    "Add": "nothing is posted automatically: add a finished submission to the leaderboard on *My Submissions*; "
           "one entry per participant",
    "Add_And_Delete": "nothing is posted automatically: add a finished submission on *My Submissions* (one entry "
                      "per participant) and remove it again if you like",
    "Add_And_Delete_Multiple": "nothing is posted automatically: on *My Submissions*, add each finished submission "
                               "you want to show (for example your best model at each resolution) and remove "
                               "entries you no longer want to show; each entry is ranked on its own",
    "Force_Last": "your latest scored submission replaces your entry automatically",
    "Force_Latest_Multiple": "every scored submission is added automatically",
    "Force_Best": "your best scored submission (by the ranking column) is shown automatically",
}


@dataclass
class PhaseFacts:
    name: str
    split: str  # val | test
    start: Optional[str]  # 'YYYY-MM-DD HH:MM:SS' UTC, as CodaBench stores it
    end: Optional[str]  # None: never ends
    per_day: Optional[int]  # None/0: unlimited
    total: Optional[int]
    asked_s: Optional[int]  # execution_time_limit
    effective_s: Optional[int]  # min(cap, asked)


@dataclass
class Facts:
    tracks: List[str]
    resolutions: List[int]
    input_sizes: List[int]  # images given to code submissions ([] without the code track)
    docker_image: str
    queue: Optional[str]
    cap_s: Optional[int]  # the default queue's cap (None: own queue)
    budget_s: Optional[int]  # the ingestion program's budget (code track)
    worker: Optional[str]  # the organizer's description of their own worker (free text)
    network: Optional[str]  # enabled | disabled | None (not stated)
    n_boot: int
    seed: int
    level: float
    phases: List[PhaseFacts]
    ranking_title: str
    ranking_key: str
    tie_break: List[str]  # titles of the next columns
    submission_rule: str
    leaderboard_title: str
    synthetic: bool = False
    notes: List[str] = field(default_factory=list)

    # -- (de)serialisation: starting_kit/facts.json --------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> "Facts":
        d = dict(d)
        d["phases"] = [PhaseFacts(**p) for p in d.get("phases") or []]
        return cls(**d)

    # -- derived -------------------------------------------------------------------------------
    @property
    def code(self) -> bool:
        return "code" in self.tracks

    @property
    def image(self) -> Optional[imageenv.Image]:
        try:
            return imageenv.lookup(self.docker_image)
        except Exception:  # an organizer's image that is not in the table
            return None

    def package_list(self) -> List[str]:
        img = self.image
        return imageenv.contents(img) if img is not None else []

    def has_package(self, name: str) -> bool:
        return any(p.split(" ")[0].lower() == name.lower() for p in self.package_list())


# ---------------------------------------------------------------------------------------------
# computing
# ---------------------------------------------------------------------------------------------

def _split_of(doc: dict, phase: dict) -> str:
    tasks = {t.get("index"): t for t in doc.get("tasks") or [] if isinstance(t, dict)}
    idx = (phase.get("tasks") or [None])[0]
    task = tasks.get(idx) or {}
    text = " ".join(str(task.get(k, "")) for k in ("reference_data", "name", "description")).lower()
    return "test" if ("final" in text or "test" in text) else "val"


def _date(value) -> Optional[str]:
    if value is None:
        return None
    try:
        return dates.format_utc(dates.codabench_datetime(value))
    except dates.DateError:
        return str(value)


def compute(doc: dict, *, scoring_config: Optional[dict] = None, tracks: Sequence[str] = TRACKS,
            resolutions: Optional[Sequence[int]] = None, input_sizes: Sequence[int] = (28, 64),
            cap: Optional[int] = limits.DEFAULT_QUEUE_CAP_S, worker: Optional[str] = None,
            network: Optional[str] = None, synthetic: bool = False) -> Facts:
    """The facts of a competition from its (rendered) competition.yaml ``doc``, the scoring program's
    config and what the bundle options decided."""
    sc = scoring_config or {}
    tracks = [t for t in TRACKS if t in tracks]
    res = sorted(int(r) for r in (resolutions or sc.get("resolutions") or registry.SIZES))
    queue = doc.get("queue") or None
    phases_doc = sorted([p for p in doc.get("phases") or [] if isinstance(p, dict)], key=lambda p: p.get("index", 0))
    lim = limits.phase_limits(phases_doc, cap)
    by_name = {p.name: p for p in lim.phases}
    phases = []
    for i, ph in enumerate(phases_doc):
        name = str(ph.get("name", f"phase {i}"))
        pl = by_name.get(name)
        phases.append(PhaseFacts(
            name=name, split=_split_of(doc, ph), start=_date(ph.get("start")), end=_date(ph.get("end")),
            per_day=ph.get("max_submissions_per_day", 5), total=ph.get("max_submissions", 100),
            asked_s=pl.asked if pl else None, effective_s=pl.effective if pl else None))
    board = ((doc.get("leaderboards") or [{}])[0]) or {}
    cols = sorted([c for c in board.get("columns") or [] if isinstance(c, dict) and not c.get("hidden")],
                  key=lambda c: c.get("index", 0))
    primary = board.get("primary_index", 0)
    first = next((c for c in cols if c.get("index") == primary), cols[0] if cols else {"title": "?", "key": "?"})
    if network is None and not queue:
        network = "enabled"  # CodaBench's default workers leave COMPETITION_CONTAINER_NETWORK_DISABLED unset
    return Facts(
        tracks=list(tracks), resolutions=res, input_sizes=sorted(int(s) for s in input_sizes) if "code" in tracks else [],
        docker_image=str(doc.get("docker_image") or "codalab/codalab-legacy:py37"), queue=queue,
        cap_s=None if queue else cap, budget_s=lim.budget if ("code" in tracks and lim.phases) else None,
        worker=(worker or None), network=network,
        n_boot=int(sc.get("n_boot", 1000)), seed=int(sc.get("seed", 0)), level=float(sc.get("level", 0.95)),
        phases=phases, ranking_title=str(first.get("title")), ranking_key=str(first.get("key")),
        tie_break=[str(c.get("title")) for c in cols if c is not first][:2],
        submission_rule=str(board.get("submission_rule") or "Add"), leaderboard_title=str(board.get("title", "")),
        synthetic=bool(synthetic))


def _yaml(path: Path) -> dict:
    import yaml

    if not path.is_file():
        return {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc if isinstance(doc, dict) else {}


def from_bundle(folder: PathLike) -> Facts:
    """The facts as the platform will use them, read back from a built bundle folder: competition.yaml,
    the programs' config.yaml, the input images present, the reference manifest; the organizer's
    worker description and network statement (which no program reads) from ``starting_kit/facts.json``."""
    root = Path(folder)
    doc = _yaml(root / "competition.yaml")
    sc = _yaml(root / "scoring_program" / "config.yaml")
    ic = _yaml(root / "ingestion_program" / "config.yaml")
    tasks = [t for t in doc.get("tasks") or [] if isinstance(t, dict)]
    code = any(t.get("ingestion_program") for t in tasks)
    sizes: set = set()
    synthetic = False
    for t in tasks:
        if t.get("input_data") and (root / t["input_data"]).is_dir():
            for p in (root / t["input_data"]).glob("*_*.npy"):
                tail = p.stem.rsplit("_", 1)[-1]
                if tail.isdigit():
                    sizes.add(int(tail))
        man = root / str(t.get("reference_data", "")) / "manifest.json"
        if man.is_file():
            synthetic |= bool(json.loads(man.read_text(encoding="utf-8")).get("synthetic"))
    kit = root / "starting_kit" / FACTS_FILE
    stated = json.loads(kit.read_text(encoding="utf-8")) if kit.is_file() else {}
    cap = ic.get("platform_cap_s", limits.default_cap(doc.get("queue"))) if code else limits.default_cap(doc.get("queue"))
    f = compute(doc, scoring_config=sc, tracks=[t for t in TRACKS if t == "results" or (t == "code" and code)],
                resolutions=sc.get("resolutions"), input_sizes=sorted(sizes), cap=cap, worker=stated.get("worker"),
                network=stated.get("network"), synthetic=synthetic)
    if code and ic.get("time_budget_s") is not None:
        f.budget_s = int(ic["time_budget_s"])
    return f


def load(path: PathLike) -> Facts:
    return Facts.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------------------------
# rendering: the one text of each fact
# ---------------------------------------------------------------------------------------------

def px(sizes: Sequence[int], conj: str = "and") -> str:
    sizes = sorted(int(s) for s in sizes)
    if not sizes:
        return "none"
    return ", ".join(str(s) for s in sizes[:-1]) + (f" {conj} " if len(sizes) > 1 else "") + f"{sizes[-1]} px"


def _when(text: Optional[str]) -> str:
    if text is None:
        return "never (no end date)"
    try:
        d = _dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return text
    return d.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def stamp_text(f: Facts) -> str:
    lines = []
    if f.synthetic:
        lines.append("> **SYNTHETIC DATA — TEST BUNDLE.** This competition was built from synthetic stand-ins for "
                     "MedMNIST+, not the genuine files. Its scores mean nothing; it exists to test the platform flow.")
    if f.resolutions == list(registry.SIZES):
        s = f"Accepted resolutions: **{px(f.resolutions)}** (one resolution per submission)"
    else:
        s = (f"This competition accepts submissions at **{px(f.resolutions)}** only (one resolution per "
             "submission); the scoring program rejects other resolutions")
    if f.code:
        same = f.input_sizes == f.resolutions
        s += (f". Code submissions: the images given to models are at **{px(f.input_sizes)}**"
              + ("" if same else f", so a model's `resolution` must be one of these ({px(f.input_sizes, 'or')}); "
                 f"result submissions may use any accepted resolution") + ".")
    else:
        s += "."
    lines.append(s)
    return "\n\n".join(lines) + "\n"


def tracks_text(f: Facts) -> str:
    if f.code:
        return ("This competition accepts **result submissions** (prediction files) and **code submissions** "
                "(`model.py`, run by the platform); the environment of code submissions is described under "
                "*Where code submissions run* below.\n")
    return ("This competition accepts **result submissions** only (prediction files); a zip with `model.py` is not "
            "run.\n")


def hardware_text(f: Facts) -> str:
    if f.queue:
        return ("the organizers' own compute worker (queue `" + f.queue + "`): "
                + (f.worker if f.worker else "not described by the organizers; ask them in the forum") + ".")
    return ("CodaBench's default queue: **CPU only, no GPU**; codabench.org does not publish the CPU count or memory "
            "of its workers, so measure your model's speed on a modest CPU"
            + (f" ({f.worker})" if f.worker else "") + ".")


def network_text(f: Facts) -> str:
    weights = ("Put pretrained weights into the zip and load them from a file beside `model.py`"
               + (" (`timm.create_model(name, pretrained=False)`, then `load_state_dict`)" if f.has_package("timm")
                  else " (plain `torch.load`/`load_state_dict`; timm is not in this image, so a timm model's code "
                       "must travel in the zip, e.g. the plain-PyTorch `model.py` that `big export` writes)")
               + ".")
    if f.network == "disabled":
        head = "**none**: the organizers' worker runs the containers without network access."
    elif f.network == "enabled":
        head = ("not disabled on " + ("the organizers' worker" if f.queue else "CodaBench's default workers")
                + ", but not guaranteed either: your model must not download anything.")
    else:
        head = "not stated by the organizers: your model must not download anything."
    return head + " " + weights


def environment_text(f: Facts) -> str:
    if not f.code:
        return ("No participant code runs in this competition: submit prediction files (result submissions). The "
                f"scoring program runs in `{f.docker_image}`.\n")
    pkgs = f.package_list()
    if pkgs:
        have = [p for p in pkgs if not p.startswith("no ")]
        lacks = [p for p in pkgs if p.startswith("no ")]
        img = f.image
        image_line = (f"* **Image:** `{f.docker_image}`: " + ", ".join(have)
                      + ("; **" + ", ".join(lacks) + "**" if lacks else "")
                      + ". Anything else (other packages, helper modules, weights) goes into your zip beside "
                      "`model.py`.")
        local = (f"* **Test under the image's Python and packages:** `big image-env {img.name}` (or `auto`) makes a "
                 f"virtualenv with them, and `big run-local --kit --image {img.name} --submission ZIP --data-root DIR` "
                 "runs the Development phase with it (starting kit README).")
    else:
        image_line = (f"* **Image:** `{f.docker_image}`, chosen by the organizers; its packages are not listed by "
                      "this benchmark's table (`big image-env --list`).")
        local = "* **Test locally:** `big run-local --kit --submission ZIP --data-root DIR` (starting kit README)."
    lines = [
        image_line,
        f"* **Hardware:** {hardware_text(f)}",
        f"* **Network:** {network_text(f)}",
        f"* **Input images:** {px(f.input_sizes)} (the `{{split}}_images` arrays of the phase's split, uint8, "
        "exactly as in the medmnist files); a model whose `resolution` is another size fails with a message "
        "listing these.",
        f"* **Time:** the ingestion program stops the model after **{f.budget_s} s** (see *Limits*)."
        if f.budget_s is not None else "* **Time:** see *Limits*.",
        local,
    ]
    return "\n".join(lines) + "\n"


def phases_text(f: Facts) -> str:
    lines = ["| phase | opens | closes | scored on | submissions | each job may run |", "|---|---|---|---|---|---|"]
    for p in f.phases:
        subs = (f"{p.per_day or 'unlimited'} per day, {p.total or 'unlimited'} in total")
        lines.append(f"| **{p.name}** | {_when(p.start)} | {_when(p.end)} | "
                     f"{'validation' if p.split == 'val' else 'test'} split | {subs} | "
                     f"{p.effective_s if p.effective_s is not None else '?'} s |")
    lines.append("")
    lines.append("Times are UTC. A phase accepts submissions only while it is open; before the Test phase opens, "
                 "check your test-split files locally with `big validate ZIP --split test`.")
    return "\n".join(lines) + "\n"


def ranking_text(f: Facts) -> str:
    rule = RULES.get(f.submission_rule, f"rule {f.submission_rule}")
    nxt = ", ".join(f.tie_break)
    return (f"**One leaderboard for all resolutions.** Entries at {px(f.resolutions, 'or')} are ranked together in "
            f"one table by **{f.ranking_title}** (ties: {nxt} and the further columns in order, then the earlier "
            "submission). The *Resolution* column tells an entry's resolution: to compare like with like, read it "
            f"(or sort by it) before comparing scores. Leaderboard rule **{f.submission_rule}**: {rule}.\n")


def bootstrap_text(f: Facts) -> str:
    if f.n_boot <= 0:
        return "The scoring program computes no bootstrap intervals in this competition (B = 0).\n"
    return (f"The detailed results show {round(f.level * 100)} % percentile bootstrap intervals: **B = {f.n_boot}** "
            f"resamples (seed {f.seed}) of each dataset's samples with replacement, the metric recomputed on each; "
            "for the mean over datasets, each replicate averages one resample of every dataset. The intervals are "
            "informational; ranking uses the point values.\n")


def rules_text(f: Facts) -> str:
    return TRAINING_RULE + "\n"


def limits_text(phases: Sequence[dict], tracks: Sequence[str] = TRACKS, queue: Optional[str] = None,
                cap: Optional[int] = limits.DEFAULT_QUEUE_CAP_S) -> str:
    """The pages' limits block: submission limits and the effective time limits (big.limits) of the
    phases under ``cap`` (None: the organizer's own queue), with the ingestion budget for code."""
    lim = limits.phase_limits(phases, cap)
    by_name = {p.name: p for p in lim.phases}
    lines = []
    for i, ph in enumerate(phases):
        name = str(ph.get("name", f"phase {i}"))
        per_day, total = ph.get("max_submissions_per_day", 5), ph.get("max_submissions", 100)
        pl = by_name.get(name)
        if pl is None:
            time_text = "its time limit is set in competition.yaml"
        else:
            time_text = f"each job (prediction, then scoring) may run **{pl.effective} s**"
            if pl.capped:
                time_text += f" (the phase asks for {pl.asked} s; the shared queue stops every job at {cap} s)"
        lines.append(f"* **{name}**: {per_day or 'unlimited'} submissions per day, {total or 'unlimited'} in total "
                     f"per participant; {time_text}.")
    lines.append("")
    lines.append("Failed submissions do not count against the daily limit.")
    if queue:
        lines.append("Jobs run on the organizers' own compute queue, which applies these time limits unchanged.")
    elif cap is not None:
        lines.append(f"Jobs run on CodaBench's shared queue, which stops every job at {cap} s: a job may run the "
                     f"smaller of {cap} s and its phase's limit.")
    if "code" in tracks and lim.phases:
        lines.append(f"A code submission's ingestion stops the model after **{lim.budget} s** ({lim.effective} s minus "
                     f"{limits.margin_rule()}, kept for starting the container and writing the results), below the "
                     f"platform's {lim.effective} s limit, and the submission fails with a message saying how far the "
                     "model got and how fast it was; the platform itself would only report \"Execution Time Limit "
                     "exceeded\", or nothing.")
    where = ("the queue (`--queue`: your own, no cap)" if queue else
             f"the shared queue's cap ({cap} s, `big bundle --platform-cap`)" if cap is not None else "the queue")
    lines.append(f"<!-- Organizers: `big bundle` computed these figures from execution_time_limit in competition.yaml "
                 f"and {where}. Rebuild the bundle after changing the queue or a limit. -->")
    return "\n".join(lines) + "\n"


def faq_text(f: Facts) -> str:
    """Answers to the mistakes a participant walkthrough made, each from the facts it depends on."""
    img = f.image
    qa = []
    qa.append(("`make_result_submission.py` said OK, but `big validate --split test` lists problems.",
               "Without `--data-root` or `--reference`, `big validate` checks the official row counts of the split; "
               "the script checked the files you used. On synthetic (`big synth`) or partial files, check against "
               "them: `big validate ZIP --split val --data-root DIR` (or `--reference DIR` from `big build-reference`). "
               "The platform scores only zips with the official row counts."))
    qa.append(("Which split do I predict for which phase?",
               "Development scores the **validation** split (`--split val`), Test the **test** split (`--split test`); "
               "the dates are under *Phases*. Before the Test phase opens, check test-split files locally with "
               "`big validate ZIP --split test`."))
    if f.code:
        pk = (", ".join(p for p in f.package_list() if not p.startswith("no ")) or "not listed")
        lacks = [p[3:] for p in f.package_list() if p.startswith("no ")]
        qa.append(("Which packages does my `model.py` have?",
                   f"Those of `{f.docker_image}`: {pk}"
                   + (f"; **not** {', '.join(lacks)}" if lacks else "") + ". Put anything else into the zip. "
                   + (f"Test it under that Python and those packages with `big image-env {img.name}` and "
                      f"`big run-local --kit --image {img.name} ...`." if img else "")))
        qa.append(("Which resolution may my code submission use?",
                   f"One of {px(f.input_sizes, 'or')}: only these images are given to models. Result submissions may "
                   f"use {px(f.resolutions, 'or')}."))
        qa.append(("Can my model download weights?", network_text(f)))
        qa.append(("How long may it run, and on what?",
                   (f"The ingestion program stops it after {f.budget_s} s " if f.budget_s is not None else "")
                   + f"(see *Limits*), on {hardware_text(f)}"))
    qa.append(("How do I run the platform's Development flow on my machine?",
               "With the starting kit and the MedMNIST+ files: `big run-local --kit --submission ZIP --data-root DIR` "
               "builds the validation labels and images from DIR and runs the kit's copy of the ingestion and "
               "scoring programs as CodaBench's worker does, ending with the leaderboard row."))
    qa.append(("My submission Finished but is not on the leaderboard.",
               f"Leaderboard rule {f.submission_rule}: {RULES.get(f.submission_rule, f.submission_rule)}."))
    qa.append(("Why are 28 px and 224 px entries in one table?",
               f"There is one leaderboard, ranked by {f.ranking_title}; read the *Resolution* column to compare "
               "entries at the same resolution."))
    qa.append(("May I train on the validation split?", "No. " + TRAINING_RULE))
    qa.append(("My result zip was run as a program, or the scorer saw no predictions.",
               "Never put a file named `metadata` or `metadata.yaml` in a submission zip: CodaBench then treats the "
               "zip as a program and passes no prediction files on (`big validate` and `big score` say so). Zip "
               "only the twelve CSV files."))
    qa.append(("How wide are the intervals on the detailed results?", bootstrap_text(f).strip()))
    return "\n".join(f"**{q}** {a}\n" for q, a in qa)


def render_blocks(f: Facts, *, phases_doc: Optional[Sequence[dict]] = None) -> Dict[str, str]:
    """The text of every generated block (pages and starting-kit README) for these facts.

    ``phases_doc`` (competition.yaml's phases) feeds the limits block; without it the block is
    rebuilt from the facts' own phase figures (the same numbers)."""
    from .bundle import datasets_table

    if phases_doc is None:
        phases_doc = [{"name": p.name, "max_submissions_per_day": p.per_day, "max_submissions": p.total,
                       **({"execution_time_limit": p.asked_s} if p.asked_s is not None else {})} for p in f.phases]
    return {
        "stamp": stamp_text(f),
        "tracks": tracks_text(f),
        "environment": environment_text(f),
        "datasets": datasets_table() + "\n",
        "limits": limits_text(phases_doc, f.tracks, f.queue, f.cap_s),
        "phases": phases_text(f),
        "ranking": ranking_text(f),
        "bootstrap": bootstrap_text(f),
        "rules": rules_text(f),
        "faq": faq_text(f),
    }
