"""The ingestion program's own budget ends everything (issue 9, point 3).

A model that sleeps, forks, detaches (fork + setsid, double fork), hops from pid to pid or stops
itself is stopped at the budget with the ingestion program's own timeout status, and nothing of its
process tree survives; after a normal finish nothing survives either. Every process the model
starts inherits a marker in its environment (set here before the run), so "nothing left" is checked
by looking for that marker in /proc, whatever the processes did to their pids, groups or sessions.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from conftest import REPO
from test_ingestion_pipeline import make_program, make_world, model_with, prediction_job, status_of


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory)


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.isdir("/proc/self"),
                                reason="process-tree control is implemented for Linux (/proc, prctl) only")

MARK = "BIG_TEST_TREE_MARK"


def my_children() -> dict:
    """{pid: state} of this test process's children (read from /proc, independent of the code under test)."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                rest = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(rest[1]) == os.getpid():
            kids[int(name)] = rest[0].decode()
    return kids


def marked(token: str) -> list:
    """Live processes whose environment holds the marker (zombies have no environment any more)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if f"{MARK}={token}".encode() in env:
            found.append(int(name))
    return found


@pytest.fixture
def tree_mark(monkeypatch):
    """A fresh marker in the environment the worker inherits; leftovers are killed afterwards (so a
    failing run cannot leave processes behind), and the test's own children are compared."""
    token = uuid.uuid4().hex
    monkeypatch.setenv(MARK, token)
    kids_before = set(my_children())
    _BEFORE[token] = kids_before
    yield token
    for _ in range(50):
        left = marked(token)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    new_kids = set(my_children()) - kids_before
    for pid in new_kids:  # reap what an older implementation may have left to us
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


_BEFORE: dict = {}


def assert_nothing_left(token: str, grace: float = 0.0) -> None:
    end = time.monotonic() + grace
    while True:
        left = marked(token)
        if not left or time.monotonic() >= end:
            break
        time.sleep(0.05)
    assert not left, f"processes of the model survived: {left}"
    zombies = [p for p, st in my_children().items() if st == "Z" and p not in _BEFORE[token]]
    assert not zombies, f"unreaped children of the test process: {zombies}"


# model code for each case, run in predict() of the first dataset
CASES = {
    "sleeps": "import time\ntime.sleep(60)",
    "forks": """
        import os, time
        if os.fork() == 0:
            while True:
                time.sleep(0.2)
        time.sleep(60)
    """,
    "detaches": """
        import os, time
        if os.fork() == 0:
            os.setsid()
            while True:
                time.sleep(0.2)
        time.sleep(60)
    """,
    "double_fork": """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)          # the intermediate exits: the daemon is orphaned
            while True:
                time.sleep(0.2)
        time.sleep(60)
    """,
    "subprocess_new_session": """
        import subprocess, sys, time
        subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: time.sleep(0.2)'],
                         start_new_session=True)
        time.sleep(60)
    """,
    "pid_hopper": """
        import os, time
        if os.fork() == 0:           # a daemon that keeps moving to a new pid
            os.setsid()
            t_end = time.time() + 30
            while time.time() < t_end:
                if os.fork() != 0:
                    os._exit(0)
                time.sleep(0.01)
            os._exit(0)
        time.sleep(60)
    """,
    "stops_itself": "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)",
    "ignores_signals": """
        import signal, time
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        time.sleep(60)
    """,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_budget_stops_the_whole_tree(case, tmp_path, world, tree_mark):
    body = "if dataset == 'pathmnist':\n" + textwrap.indent(textwrap.dedent(CASES[case]).strip(), "    ")
    t = time.monotonic()
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model_with(body)}, budget=3.0, margin=0.5)
    took = time.monotonic() - t
    assert rc == 1, log
    status = status_of(out)
    assert status["status"] == "timeout", status
    assert status["message"].startswith("time budget exceeded: ingestion stopped the model after"), status
    assert "pathmnist (batch 1 of 3)" in status["message"] and status["dataset"] == "pathmnist"
    assert status["elapsed_s"] < 3.0 and took < 6.0
    assert sorted(p.name for p in out.iterdir()) == ["ingestion_status.json"]
    assert_nothing_left(tree_mark)
    if case in ("forks", "detaches", "double_fork", "subprocess_new_session", "pid_hopper"):
        assert "other process(es) the model had started" in log


def test_budget_while_loading_with_a_detached_daemon(tmp_path, world, tree_mark):
    model = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork():\n        os._exit(0)\n"
             "    while True:\n        time.sleep(0.2)\ntime.sleep(60)\n") + model_with("")
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model}, budget=2.5, margin=0.5)
    status = status_of(out)
    assert rc == 1 and status["status"] == "timeout" and "still loading" in status["message"]
    assert_nothing_left(tree_mark)


def test_nothing_survives_a_normal_finish(tmp_path, world, tree_mark):
    """A daemon detached by a model that then finishes normally is stopped too, before the status is
    written: it cannot overwrite the output afterwards."""
    out_dir = tmp_path / "output"
    daemon = f"""
        import json, os, time
        if dataset == 'pathmnist' and not getattr(Model, 'spawned', False):
            Model.spawned = True
            if os.fork() == 0:
                os.setsid()
                if os.fork():
                    os._exit(0)
                fake = {{"track": "code", "status": "ok", "message": "forged by the daemon"}}
                while True:
                    try:
                        with open({str(out_dir / 'ingestion_status.json')!r}, 'w') as fh:
                            json.dump(fake, fh)
                        open({str(out_dir / 'late.txt')!r}, 'w').write('x')
                    except OSError:
                        pass
                    time.sleep(0.01)
    """
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model_with(daemon)}, budget=30.0)
    assert rc == 0, log
    time.sleep(0.3)  # a surviving daemon would write again meanwhile
    status = status_of(out)
    assert status["status"] == "ok" and "forged" not in status["message"]
    assert not (out / "late.txt").exists()
    assert_nothing_left(tree_mark)
    assert "stopped 1 other process(es) the model had started" in log


def _unshare_works() -> bool:
    exe = shutil.which("unshare")
    if not exe:
        return False
    try:
        res = subprocess.run([exe, "--user", "--pid", "--fork", "--mount-proc", "--map-root-user", "sh", "-c",
                              'test "$$" = 1'], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="no unprivileged PID namespaces here (unshare --user --pid)")
@pytest.mark.parametrize("ending", ["finishes", "budget"])
def test_ingestion_program_as_pid_1(ending, tmp_path, world):
    """In a container without an init, ingest.py is PID 1: orphans come to it directly. A detached
    daemon is still stopped, and the run neither hangs nor loses its status."""
    sleep = "\nif dataset == 'chestmnist':\n    import time\n    time.sleep(60)" if ending == "budget" else ""
    model = model_with(textwrap.dedent("""
        import os, time
        if dataset == 'pathmnist' and not getattr(Model, 'spawned', False):
            Model.spawned = True
            if os.fork() == 0:
                os.setsid()
                if os.fork():
                    os._exit(0)
                while True:
                    time.sleep(0.2)
    """) + sleep)
    prog = make_program(tmp_path / "prog", {"model.py": model})
    out = tmp_path / "out"
    shutil.copytree(prog, out)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = ["unshare", "--user", "--pid", "--fork", "--mount-proc", "--map-root-user", sys.executable,
           str(REPO / "ingestion_program" / "ingest.py"), str(world["input"]), str(out), str(prog),
           "--data-dir", "", "--time-budget", "4"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    status = status_of(out)
    assert "stopped 1 other process(es) the model had started" in res.stdout, res.stdout + res.stderr
    if ending == "finishes":
        assert res.returncode == 0 and status["status"] == "ok", res.stdout + res.stderr
    else:
        assert res.returncode == 1 and status["status"] == "timeout" and "chestmnist" in status["message"]
    assert "Traceback" not in res.stderr
