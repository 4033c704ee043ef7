"""CodaBench's time limits, computed in one place (codabench.md §2.6).

CodaBench runs each job of a submission (prediction, then scoring) for::

    effective = min(cap, execution_time_limit)   on the default queue (cap = MAX_EXECUTION_TIME_LIMIT)
    effective = execution_time_limit             on an organizer's own queue (no cap)

The cap is 600 s in CodaBench's code default (``.env_sample``); codabench.org has reported 1200 s
(issue #1842). The worker's own limit is unreliable: its alarm can be swallowed while it streams the
container's logs, and the job then runs on (or is killed with a bare "Execution Time Limit
exceeded"). So the ingestion program stops the model itself, first, with its own message::

    budget = effective - max(120 s, 10 % of effective)

Every time figure of the project comes from here: the ingestion program's default budget, what
``big bundle`` writes into ``ingestion_program/config.yaml`` (with the cap, so ``big lint`` and
``big run-local`` read it back), the pages' limits block, lint's findings and run-local's checks.
Pure standard library: the ingestion program imports this module inside the CodaBench images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

#: MAX_EXECUTION_TIME_LIMIT of CodaBench's code (``.env_sample``), the default queue's cap
DEFAULT_QUEUE_CAP_S = 600
#: the cap codabench.org's maintainers reported in May 2025 (issue #1842); not assumed anywhere
REPORTED_QUEUE_CAP_S = 1200
#: ``Phase.execution_time_limit`` when a phase does not set it
PHASE_DEFAULT_LIMIT_S = 600
#: kept back from the effective limit: container start, imports (torch 10-20 s), model loading,
#: writing the CSVs and the status file
MARGIN_MIN_S = 120
MARGIN_FRACTION = 0.10


def default_cap(queue: Optional[str]) -> Optional[int]:
    """The cap a bundle gets when ``--platform-cap`` is not given: none on an own queue."""
    return None if queue else DEFAULT_QUEUE_CAP_S


def effective_limit(execution_time_limit: Optional[int], cap: Optional[float]) -> int:
    """How long CodaBench lets one job run: ``min(cap, execution_time_limit)`` (no cap: the limit)."""
    limit = int(PHASE_DEFAULT_LIMIT_S if execution_time_limit is None else execution_time_limit)
    return limit if cap is None else min(limit, int(cap))


def margin(limit: int) -> int:
    """Seconds of the effective limit kept back from the ingestion budget: max(120 s, 10 %)."""
    return max(MARGIN_MIN_S, int(round(MARGIN_FRACTION * int(limit))))


def time_budget(limit: int) -> int:
    """The ingestion program's budget for an effective limit: the limit minus :func:`margin`."""
    return max(int(limit) - margin(limit), 1)


def min_limit(stop_margin_s: float) -> int:
    """The smallest effective limit whose budget leaves the model any time (budget > stop margin)."""
    limit = 1
    while time_budget(limit) <= stop_margin_s:
        limit += 1
    return limit


def margin_rule() -> str:
    return f"max({MARGIN_MIN_S} s, {int(MARGIN_FRACTION * 100)} %)"


@dataclass(frozen=True)
class PhaseLimit:
    name: str
    asked: int  # execution_time_limit of the phase
    effective: int  # what CodaBench applies

    @property
    def capped(self) -> bool:
        return self.effective < self.asked


@dataclass(frozen=True)
class Limits:
    """The limits of a competition's phases under one cap (None: an organizer's own queue)."""

    cap: Optional[int]
    phases: Tuple[PhaseLimit, ...]

    @property
    def effective(self) -> int:
        """The smallest effective limit: the bundle has one ingestion program for all phases."""
        return min((p.effective for p in self.phases), default=effective_limit(None, self.cap))

    @property
    def budget(self) -> int:
        return time_budget(self.effective)

    def budget_comment(self) -> str:
        """The comment ``big bundle`` writes beside ``time_budget_s``."""
        cap = f"platform cap {self.cap} s" if self.cap is not None else "own queue, no platform cap"
        return (f"effective limit {self.effective} s (min of execution_time_limit and the {cap}) "
                f"minus {margin_rule()} (big bundle)")


def phase_limits(phases: Sequence[dict], cap: Optional[float]) -> Limits:
    """:class:`Limits` of competition.yaml's ``phases`` (a missing limit is CodaBench's default 600 s)."""
    out = []
    for i, ph in enumerate(phases):
        if not isinstance(ph, dict):
            continue
        asked = ph.get("execution_time_limit", PHASE_DEFAULT_LIMIT_S)
        if isinstance(asked, bool) or not isinstance(asked, int):
            continue  # lint reports it; no figure is derived from a value CodaBench would refuse
        out.append(PhaseLimit(str(ph.get("name", f"phase {i}")), asked, effective_limit(asked, cap)))
    return Limits(None if cap is None else int(cap), tuple(out))
