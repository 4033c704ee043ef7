"""Stopping the model's whole process tree: every process it started, however it started it.

A model can start processes that leave its process group and session (``setsid``) and orphan
themselves (double fork), so killing the worker's process group is not enough. On Linux:

* the supervisor makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``), so a
  descendant whose parent dies is re-parented to the supervisor instead of to the container's init;
  when the ingestion program is itself PID 1 of its container, orphans come to it anyway;
* the tree is then found in ``/proc``: the worker, every new child of the supervisor (started by
  nobody else in this process: a re-parented orphan), and all their descendants;
* every member is frozen (``SIGSTOP``, so that none can fork again) and killed (``SIGKILL``), and the
  supervisor's own re-parented children are reaped, round after round until none is left.

Elsewhere (no ``/proc`` or no ``prctl``) only the worker's process group is killed.

The supervisor also makes itself non-dumpable (``PR_SET_DUMPABLE`` 0) while the model runs: processes
of the same user can then neither ptrace it nor open its ``/proc/<pid>/mem`` or file descriptors
(an unprivileged container has no CAP_SYS_PTRACE to override that).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from typing import Dict, Iterable, List, Optional, Set, Tuple

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

LINUX = sys.platform.startswith("linux")


def _libc():
    if not LINUX:
        return None
    try:
        lib = ctypes.CDLL(None, use_errno=True)  # the C library this interpreter already uses
        lib.prctl  # noqa: B018 - AttributeError when missing
    except (OSError, AttributeError):
        return None
    return lib


_LIBC = _libc()


def prctl(option: int, arg: int = 0) -> Optional[int]:
    """``prctl(option, arg, 0, 0, 0)``; None when it is unavailable or fails."""
    if _LIBC is None:
        return None
    res = _LIBC.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.c_ulong(0))
    return None if res < 0 else int(res)


def _get_flag(option: int) -> Optional[int]:
    if _LIBC is None:
        return None
    val = ctypes.c_int(0)
    if _LIBC.prctl(ctypes.c_int(option), ctypes.byref(val), ctypes.c_ulong(0), ctypes.c_ulong(0),
                   ctypes.c_ulong(0)) < 0:
        return None
    return int(val.value)


def die_with_parent() -> None:
    """In the worker: be killed when the supervisor dies (if the model kills its parent)."""
    parent = os.getppid()
    if prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL)) is not None and os.getppid() != parent:
        os._exit(1)  # the parent died before the request took effect


def scan() -> Dict[int, Tuple[int, str]]:
    """{pid: (ppid, state)} of every process visible in /proc (empty without /proc)."""
    out: Dict[int, Tuple[int, str]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read(4096)
        except OSError:  # gone meanwhile
            continue
        rest = raw[raw.rfind(b")") + 2:].split()  # the command name may hold spaces and parentheses
        if len(rest) >= 2:
            try:
                out[int(name)] = (int(rest[1]), rest[0].decode("ascii", "replace"))
            except ValueError:
                continue
    return out


def children_of(pid: int, procs: Optional[Dict[int, Tuple[int, str]]] = None) -> Set[int]:
    procs = scan() if procs is None else procs
    return {p for p, (pp, _) in procs.items() if pp == pid}


def _descendants(roots: Iterable[int], procs: Dict[int, Tuple[int, str]]) -> Set[int]:
    kids: Dict[int, List[int]] = {}
    for p, (pp, _) in procs.items():
        kids.setdefault(pp, []).append(p)
    out: Set[int] = set()
    todo = [r for r in roots if r in procs]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.add(p)
        todo.extend(kids.get(p, ()))
    return out


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ProcessTree:
    """The processes one worker started. Use as a context manager around the worker's whole life.

    It assumes that nothing else in this process starts child processes while the worker runs (true
    of the ingestion program; in the test suite, tests run one at a time).
    """

    def __init__(self) -> None:
        self.me = os.getpid()
        self.procfs = LINUX and os.path.isdir(f"/proc/{self.me}")
        self.known: Set[int] = children_of(self.me) if self.procfs else set()
        self.subreaper = False
        self._prev_subreaper: Optional[int] = None
        self._prev_dumpable: Optional[int] = None
        self.killed = 0  # processes of the model's tree that were still running when it was stopped

    def __enter__(self) -> "ProcessTree":
        if self.procfs:
            self._prev_subreaper = _get_flag(PR_GET_CHILD_SUBREAPER)
            self.subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1) is not None
        self._prev_dumpable = prctl(PR_GET_DUMPABLE)
        if self._prev_dumpable:
            prctl(PR_SET_DUMPABLE, 0)
        return self

    def __exit__(self, *exc) -> None:
        if self.subreaper and self._prev_subreaper == 0:
            prctl(PR_SET_CHILD_SUBREAPER, 0)
        if self._prev_dumpable:
            prctl(PR_SET_DUMPABLE, self._prev_dumpable)

    def members(self, root: int, procs: Optional[Dict[int, Tuple[int, str]]] = None) -> Set[int]:
        """The worker ``root``, the orphans re-parented to us, and all their descendants."""
        procs = scan() if procs is None else procs
        roots = {root} | {p for p, (pp, _) in procs.items() if pp == self.me and p not in self.known}
        return _descendants(roots, procs)

    def stop(self, root: int, timeout: float = 10.0) -> List[int]:
        """Kill the whole tree of the worker ``root`` (not reaping ``root`` itself: its Popen does).
        Returns the pids still alive after ``timeout`` (none, normally)."""
        if not self.procfs:
            try:
                os.killpg(root, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                _signal(root, signal.SIGKILL)
            return []
        deadline = time.monotonic() + timeout
        pause = 0.001
        seen: Set[int] = set()
        while True:
            procs = scan()
            members = self.members(root, procs)
            live = [p for p in members if procs[p][1] not in ("Z", "X")]
            for p in live:
                _signal(p, signal.SIGSTOP)  # frozen first: a frozen process cannot fork any more
            for p in members:
                _signal(p, signal.SIGKILL)  # also zombies: a zombie leader may still have live threads
            seen.update(p for p in live if p != root)
            ours = [p for p in members if procs[p][0] == self.me and p != root]
            for p in ours:
                try:
                    os.waitpid(p, os.WNOHANG)
                except ChildProcessError:
                    pass
            # done when the worker is dead (its Popen reaps it) and nothing else is left: once the worker
            # shows as a zombie its children have been re-parented to us and appear in the scan
            root_dead = root not in procs or procs[root][1] in ("Z", "X")
            if root_dead and not (members - {root}):
                break
            if time.monotonic() > deadline:
                return sorted(members - {root})
            time.sleep(pause)
            pause = min(0.02, pause * 2)
        self.killed = len(seen)
        return []
