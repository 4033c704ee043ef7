"""Every participant-controlled byte is untrusted (issue 10, ingestion side).

* what predict() returns: converted to a plain float64 array, or rejected, before any check (6);
* the shape hints (8);
* the supervisor's message channel: malformed or forged messages, a closed or hijacked channel,
  signals to the supervisor; "ok" only after the 12 CSVs were read back with the scorer's reader (4);
* what ends up in the output: only the ingestion program's files, its status written last; a
  result submission's own ingestion_status.json removed so that it still scores (3);
* a result submission with a model.py beside it: the model.py is ignored and logged (1).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from big import ingestion, registry
from big.errors import SubmissionError
from big.fsutil import remove_tree
from big.submission import write_submission

from conftest import REPO
from test_ingestion_pipeline import (N_TEST, UNIFORM, make_program, make_world, model_with, prediction_job,
                                     scoring_job, status_of)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory)


CSVS = sorted(f"{f}_28.csv" for f in registry.flags())


def files_in(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))


# ---------------------------------------------------------------------------------------------
# 8: shape hints for binary, multiclass and multilabel datasets
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,shape,needle,absent", [
    ("breastmnist", (4,), "breastmnist is binary: give 2 columns", None),
    ("breastmnist", (4, 1), "breastmnist is binary: give 2 columns", None),
    ("pathmnist", (4, 1), "pathmnist has 9 classes: give one column per class", "binary"),
    ("pathmnist", (4,), "pathmnist has 9 classes", "binary"),
    ("chestmnist", (4, 1), "chestmnist has 14 labels: give one column per label", "binary"),
    ("chestmnist", (4,), "chestmnist has 14 labels", "binary"),
    ("organamnist", (4, 10), "organamnist has 11 classes: one column for each", "binary"),
    ("pathmnist", (9, 4), "transposed", "binary"),
    ("pathmnist", (5, 9), "the batch holds 4 images", "binary"),
    ("dermamnist", (4, 7, 1), "expected (4, 7)", "binary"),
])
def test_shape_hints(flag, shape, needle, absent):
    n_cols = registry.get(flag).n_labels
    msg = ingestion.check_output(np.full(shape, 0.5), 4, n_cols, flag)
    assert needle in msg, msg
    assert absent is None or absent not in msg, msg


# ---------------------------------------------------------------------------------------------
# 6: every output type converted or rejected before any check
# ---------------------------------------------------------------------------------------------

class Liar(np.ndarray):
    """An ndarray subclass whose comparisons and isfinite always say 'fine'."""

    def __lt__(self, other):
        return np.zeros(self.shape, bool)

    def __gt__(self, other):
        return np.zeros(self.shape, bool)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc is np.isfinite:
            return np.ones(self.shape, bool)
        inputs = [np.asarray(x) if isinstance(x, Liar) else x for x in inputs]
        return getattr(ufunc, method)(*inputs, **kwargs)

    def astype(self, *args, **kwargs):
        return self


class HasArray:
    def __array__(self, dtype=None, copy=None):
        return np.full((4, 9), 0.5)


def _masked_nan():
    a = np.full((4, 9), 0.5)
    a[1, 2] = np.nan
    return np.ma.masked_invalid(a)


def _memmap(tmp_path):
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float32, shape=(4, 9))
    mm[:] = 0.25
    return mm


REJECTED = {
    "masked_nan": (lambda t: _masked_nan(), "masked array with 1 masked value"),
    "liar_subclass_out_of_range": (lambda t: np.full((4, 9), -5.0).view(Liar), "outside [0, 1]"),
    "liar_subclass_nan": (lambda t: np.full((4, 9), np.nan).view(Liar), "non-finite"),
    "object_with___array__": (lambda t: HasArray(), "not a numpy array"),
    "list": (lambda t: np.full((4, 9), 0.5).tolist(), "returned a list"),
    "tuple": (lambda t: tuple(np.full((4, 9), 0.5)), "returned a tuple"),
    "none": (lambda t: None, "returned None"),
    "scalar": (lambda t: 0.5, "single value"),
    "numpy_scalar": (lambda t: np.float64(0.5), "single value"),
    "dict": (lambda t: {"scores": 1}, "returned a dict"),
    "object_dtype": (lambda t: np.full((4, 9), 0.5, dtype=object), "Python objects"),
    "structured": (lambda t: np.zeros((4, 9), dtype=[("a", "f8")]), "structured"),
    "complex": (lambda t: np.full((4, 9), 0.5 + 0j), "complex"),
    "bool": (lambda t: np.ones((4, 9), bool), "booleans"),
    "string": (lambda t: np.full((4, 9), "0.5"), "strings"),
    "datetime": (lambda t: np.zeros((4, 9), "datetime64[s]"), "dates"),
    "zero_dim": (lambda t: np.array(0.5), "shape ()"),
    "float16_inf": (lambda t: np.full((4, 9), np.inf, dtype=np.float16), "non-finite"),
    "int_out_of_range": (lambda t: np.full((4, 9), 2, dtype=np.int64), "outside [0, 1]"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_output_types_rejected_with_what_to_return(case, tmp_path):
    make, needle = REJECTED[case]
    scores, msg = ingestion.as_scores(make(tmp_path), 4, 9, "pathmnist")
    assert scores is None and needle in msg, msg
    assert ingestion.check_output(make(tmp_path), 4, 9, "pathmnist") == msg


ACCEPTED = {
    "plain": (lambda t: np.full((4, 9), 0.5), 0.5),
    "masked_without_masked_values": (lambda t: np.ma.masked_array(np.full((4, 9), 0.5), mask=False), 0.5),
    "matrix": (lambda t: np.asmatrix(np.full((4, 9), 0.5)), 0.5),
    "memmap": (_memmap, 0.25),
    "float16": (lambda t: np.full((4, 9), 0.5, dtype=np.float16), 0.5),
    "longdouble": (lambda t: np.full((4, 9), 0.5, dtype=np.longdouble), 0.5),
    "big_endian": (lambda t: np.full((4, 9), 0.5, dtype=">f8"), 0.5),
    "int_ones": (lambda t: np.ones((4, 9), dtype=np.uint8), 1.0),
    "fortran_order": (lambda t: np.asfortranarray(np.full((4, 9), 0.5)), 0.5),
    "strided": (lambda t: np.full((4, 18), 0.5)[:, ::2], 0.5),
    "read_only": (lambda t: np.broadcast_to(np.float64(0.5), (4, 9)), 0.5),
}


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_output_types_converted_to_plain_float64(case, tmp_path):
    make, value = ACCEPTED[case]
    scores, msg = ingestion.as_scores(make(tmp_path), 4, 9, "pathmnist")
    assert msg is None
    assert type(scores) is np.ndarray and scores.dtype == np.float64 and scores.dtype.isnative
    assert scores.flags.c_contiguous and scores.flags.owndata and scores.shape == (4, 9)
    assert np.all(scores == value)


def test_torch_tensor_rejected_with_the_conversion():
    torch = pytest.importorskip("torch")
    msg = ingestion.check_output(torch.full((4, 9), 0.5), 4, 9, "pathmnist")
    assert "tensor.detach().cpu().numpy()" in msg


def test_masked_nan_model_fails_in_ingestion_not_at_the_scorer(tmp_path, world):
    model = model_with("if dataset == 'bloodmnist':\n    out[0, 0] = np.nan\nout = np.ma.masked_invalid(out)")
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model})
    status = status_of(out)
    assert rc == 1 and status["status"] == "failed", status
    assert "bloodmnist" in status["message"] and "masked array with 1 masked value" in status["message"]
    rc, err, _ = scoring_job(out, world, tmp_path)
    assert rc == 1 and "masked array" in err


def test_array_subclasses_become_their_plain_values(tmp_path, world):
    model = model_with("out = np.asmatrix(out) if dataset == 'pathmnist' else np.ma.masked_array(out, mask=False)")
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model})
    assert rc == 0, log
    assert scoring_job(out, world, tmp_path)[0] == 0


# ---------------------------------------------------------------------------------------------
# 4: the message channel is untrusted (model code knows its fd: it is on the worker's argv)
# ---------------------------------------------------------------------------------------------

def forge(payload: bytes, where: str = "import") -> str:
    """A model.py that writes ``payload`` to the worker's message channel at import or in predict."""
    code = f"import os, sys\nos.write(int(sys.argv[2]), {payload!r})\n"
    if where == "import":
        return code + UNIFORM
    return model_with(f"if dataset == 'pathmnist':\n{textwrap.indent(code, '    ')}")


FORGED = {
    "done_before_any_dataset": (b'{"event": "done"}\n', "import", "a 'done' message after 0 of 12 datasets"),
    "not_json": (b"hello world\n", "import", "a line that is not a JSON message"),
    "non_utf8": (b"\xff\xfe\x00garbage\n", "import", "not a JSON message"),
    "json_list": (b"[1, 2, 3]\n", "import", "a JSON list instead of a message"),
    "json_string": (b'"done"\n', "import", "a JSON str instead of a message"),
    "json_number": (b"1e999\n", "import", "a JSON float instead of a message"),
    "deeply_nested": (b"[" * 100_000 + b"\n", "import", "not a JSON message"),
    "missing_event": (b'{"stage": "import"}\n', "import", "unknown event None"),
    "unknown_event": (b'{"event": "hello"}\n', "import", "unknown event 'hello'"),
    "missing_keys": (b'{"event": "dataset"}\n', "predict", "missing field(s) batches, dataset, n"),
    "extra_keys": (b'{"event": "done", "ok": true}\n', "import", "unexpected field(s) 'ok'"),
    "wrong_types": (b'{"event": "dataset_done", "dataset": "pathmnist", "n": "5", "seconds": "x", '
                    b'"model_seconds": 0}\n', "predict", "'dataset_done' message for 'pathmnist' before all"),
    "negative_done": (b'{"event": "batch", "dataset": "pathmnist", "batch": 1, "done": -5}\n', "predict",
                      "'batch' message whose done is not an integer"),
    "bool_as_int": (b'{"event": "batch", "dataset": "pathmnist", "batch": true, "done": 10}\n', "predict",
                    "whose batch is not an integer"),
    "out_of_order_dataset": (b'{"event": "dataset", "dataset": "octmnist", "n": 24, "batches": 3}\n', "predict",
                             "out-of-order 'dataset' message for 'octmnist'"),
    "second_model": (b'{"event": "model", "resolution": 28, "batch_size": 10, "device": null}\n', "predict",
                     "a second 'model' message"),
    "huge_line": (b"x" * (1 << 20), "import", "a line longer than 262,144 bytes"),
    "dict_resolution": (b'{"event": "model", "resolution": {"a": 1}, "batch_size": 10}\n', "import",
                        "resolution is not one of"),
}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_forged_or_malformed_messages_fail_cleanly(case, tmp_path, world):
    payload, where, needle = FORGED[case]
    rc, out, log = prediction_job(tmp_path, world, {"model.py": forge(payload, where)})
    status = status_of(out)
    assert rc == 1 and status["status"] == "failed", (status, log)
    assert status["message"].startswith("the model's code interfered with the ingestion program"), status
    assert needle in status["message"], status["message"]
    assert "must not write to, close or replace file descriptors" in status["message"]
    assert files_in(out) == ["ingestion_status.json"]
    rc, err, _ = scoring_job(out, world, tmp_path)
    assert rc == 1 and "interfered" in err


def _forged_run(n: int, batch: int = 10) -> bytes:
    """The messages of a complete, valid-looking run of the 12 datasets (n images each)."""
    lines = [{"event": "model", "resolution": 28, "batch_size": batch, "device": None},
             {"event": "plan", "counts": {f: n for f in registry.flags()}}]
    for f in registry.flags():
        k = -(-n // batch)
        lines.append({"event": "dataset", "dataset": f, "n": n, "batches": k})
        lines += [{"event": "batch", "dataset": f, "batch": b, "done": min(n, b * batch)} for b in range(1, k + 1)]
        lines.append({"event": "dataset_done", "dataset": f, "n": n, "seconds": 0.1, "model_seconds": 0.05})
    lines.append({"event": "done"})
    return "".join(json.dumps(m) + "\n" for m in lines).encode()


def _staging_writer(rows: int, cols_ok: bool = True) -> str:
    """Model code that writes CSVs straight into the ingestion program's staging folder (from job.json)."""
    return textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        staging = Path(json.loads(Path(sys.argv[1]).read_text())["staging"])
        for flag, c in N_COLS.items():
            c = c if {cols_ok!r} else c + 1
            rows = "".join(f"{{i}}," + ",".join(["0.5"] * c) + "\\n" for i in range({rows}))
            (staging / f"{{flag}}_28.csv").write_text("id," + ",".join(map(str, range(c))) + "\\n" + rows)
    """)


def _forging_model(extra: str = "") -> str:
    """Forges a whole run at import time, then holds the real worker back (it would write real files)."""
    return (UNIFORM + extra + f"\nimport os, sys, time\nos.write(int(sys.argv[2]), {_forged_run(N_TEST)!r})\n"
            "time.sleep(30)\n")


def test_forged_complete_run_without_files_is_not_ok(tmp_path, world):
    rc, out, log = prediction_job(tmp_path, world, {"model.py": _forging_model()})
    status = status_of(out)
    assert rc == 1 and status["status"] == "failed"
    assert "read-back check with the scorer's reader" in status["message"]
    assert "pathmnist_28.csv: the prediction file is missing" in status["message"]
    assert files_in(out) == ["ingestion_status.json"]


def test_forged_run_with_files_of_the_wrong_length_is_not_ok(tmp_path, world):
    rc, out, log = prediction_job(tmp_path, world, {"model.py": _forging_model(_staging_writer(N_TEST - 1))})
    status = status_of(out)
    assert rc == 1 and status["status"] == "failed"
    assert f"expected {N_TEST} rows" in status["message"], status["message"]
    assert files_in(out) == ["ingestion_status.json"]


def test_forged_run_with_valid_files_is_checked_like_any_result(tmp_path, world):
    """Files that pass the scorer's reader are predictions, whoever wrote them: ok, and they score."""
    rc, out, log = prediction_job(tmp_path, world, {"model.py": _forging_model(_staging_writer(N_TEST))})
    assert rc == 0, log
    assert files_in(out) == sorted(CSVS + ["ingestion_status.json"])
    assert scoring_job(out, world, tmp_path)[0] == 0


@pytest.mark.parametrize("trick,needle", [
    ("fifo", "not a regular file"),
    ("symlink", "symbolic link"),
    ("huge", "far more than its rows can take"),
    ("directory", "pathmnist_28.csv: the prediction file is"),
])
def test_staged_file_replaced_by_the_model(trick, needle, tmp_path, world):
    """The model replaces an already written CSV in the staging folder: the read-back never blocks,
    follows a link or reads without bound, and the run fails with a message."""
    # (kept small and finite: an implementation that follows links or copies blindly must not fill the disk)
    make = {"fifo": "os.mkfifo(p)", "symlink": "os.symlink(sys.argv[1], p)",
            "huge": "open(p, 'wb').truncate(8 << 20)", "directory": "os.mkdir(p)"}[trick]
    model = model_with(f"""
        import json, os, sys
        from pathlib import Path
        if dataset == 'chestmnist':
            p = Path(json.loads(Path(sys.argv[1]).read_text())["staging"]) / "pathmnist_28.csv"
            if p.is_file() and not p.is_symlink():
                p.unlink()
                {make}
    """)
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model}, budget=60)
    status = status_of(out)
    assert rc == 1 and status["status"] == "failed", status
    assert "read-back check" in status["message"] and needle in status["message"], status["message"]
    assert files_in(out) == ["ingestion_status.json"]


def test_closed_channel_is_named(tmp_path, world):
    model = model_with("import os, sys\nif dataset == 'dermamnist':\n    os.close(int(sys.argv[2]))")
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model})
    status = status_of(out)
    assert rc == 1 and status["status"] == "failed"
    assert "closed the ingestion program's message channel" in status["message"], status["message"]
    assert "dermamnist" in status["message"]


def test_stdout_redirected_into_the_channel(tmp_path, world):
    model = model_with("import os, sys\nos.dup2(int(sys.argv[2]), 1)\nprint('hello', flush=True)")
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model})
    status = status_of(out)
    assert rc == 1 and "not a JSON message: b'hello'" in status["message"], status["message"]


def test_message_checks_unit():
    """protocol.check on its own: numbers, strings and order, including values JSON can carry."""
    from big.ingestion import protocol
    from big.ingestion.supervisor import Progress

    p = Progress()
    with pytest.raises(protocol.Violation, match="not one of"):
        protocol.check({"event": "model", "resolution": 28.0, "batch_size": 10}, p)
    with pytest.raises(protocol.Violation, match="batch_size"):
        protocol.check({"event": "model", "resolution": 28, "batch_size": 10 ** 30}, p)
    ok = protocol.check({"event": "model", "resolution": 28, "batch_size": 10, "device": "x" * 10_000}, p)
    assert len(ok["device"]) < 400
    p.resolution, p.batch_size, p.stage = 28, 10, "import"
    for bad in ({f: -1 for f in registry.flags()}, {f: 1.5 for f in registry.flags()}, {"pathmnist": 3}, [1, 2],
                {**{f: 3 for f in registry.flags()}, "x": 1}):
        with pytest.raises(protocol.Violation, match="counts|count of"):
            protocol.check({"event": "plan", "counts": bad}, p)
    p.counts = {f: 20 for f in registry.flags()}
    p.dataset, p.n, p.batches, p.batch, p.done_in_dataset = "pathmnist", 20, 2, 2, 20
    for secs in (float("nan"), float("inf"), -1.0, "1", None, True):
        with pytest.raises(protocol.Violation, match="seconds"):
            protocol.check({"event": "dataset_done", "dataset": "pathmnist", "n": 20, "seconds": secs,
                            "model_seconds": 0.0}, p)
    msg = protocol.check({"event": "failed", "summary": "s" * 100_000, "details": None, "dataset": None,
                          "batch": None}, p)
    assert len(msg["summary"]) <= protocol.MAX_SUMMARY_CHARS + 100 and msg["details"] == ""
    with pytest.raises(protocol.Violation, match="dataset"):
        protocol.check({"event": "failed", "summary": "x", "dataset": "nope"}, p)
    with pytest.raises(protocol.Violation, match="summary"):
        protocol.check({"event": "error", "summary": ["x"]}, p)


def _run_program(tmp_path, world, model: str, budget: float = 30):
    """ingest.py in its own process (signals to its parent must not reach the test process)."""
    prog = make_program(tmp_path / "prog", {"model.py": model})
    out = tmp_path / "out"
    shutil.copytree(prog, out)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, str(REPO / "ingestion_program" / "ingest.py"), str(world["input"]),
                          str(out), str(prog), "--data-dir", "", "--time-budget", str(budget)],
                         capture_output=True, text=True, env=env, timeout=90)
    return res, out


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1", "SIGHUP", "SIGINT"])
def test_signal_to_the_supervisor_ends_with_a_status(sig, tmp_path, world):
    model = model_with(f"import os, signal, time\nif dataset == 'octmnist':\n"
                       f"    os.kill(os.getppid(), signal.{sig})\n    time.sleep(30)")
    res, out = _run_program(tmp_path, world, model)
    status = status_of(out)
    assert res.returncode == 1, res.stdout + res.stderr
    assert status["status"] == "failed" and f"received {sig}" in status["message"], status
    assert "octmnist" in status["message"] and "Traceback" not in res.stderr
    assert files_in(out) == ["ingestion_status.json"]


def test_suspending_the_supervisor_is_ignored(tmp_path, world):
    model = model_with("import os, signal\nif dataset == 'octmnist':\n    os.kill(os.getppid(), signal.SIGTSTP)")
    res, out = _run_program(tmp_path, world, model)
    assert res.returncode == 0 and status_of(out)["status"] == "ok", res.stdout + res.stderr


def test_model_killing_the_supervisor_dies_with_it(tmp_path, world):
    """SIGKILL cannot be caught: the status written before the model started stays (failed), and the
    worker does not live on (it dies with its parent)."""
    pidfile = tmp_path / "worker.pid"
    model = model_with(f"import os, signal, time\nif dataset == 'octmnist':\n"
                       f"    open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
                       f"    os.kill(os.getppid(), signal.SIGKILL)\n    time.sleep(30)")
    res, out = _run_program(tmp_path, world, model)
    pid = int(pidfile.read_text())
    try:
        assert res.returncode == -signal.SIGKILL
        status = status_of(out)
        assert status["status"] == "failed" and "stopped before it finished" in status["message"]
        for _ in range(40):
            try:
                state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                break
            if state == "Z":
                break
            import time

            time.sleep(0.05)
        else:
            pytest.fail("the worker survived its supervisor")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------------------------------------
# 3: the output holds only the ingestion program's files; its status is written last
# ---------------------------------------------------------------------------------------------

def _scribbler(out_dir, then: str = "") -> str:
    """Model code that writes every kind of entry into the output (then runs ``then``)."""
    return model_with(textwrap.dedent(f"""
        import json, os
        from pathlib import Path
        o = Path({str(out_dir)!r})
        if dataset == 'pathmnist' and not (o / 'extra.csv').exists():
            (o / 'extra.csv').write_text('id,0\\n0,0.5\\n')
            (o / 'pathmnist_64.csv').write_text('id,0\\n')
            (o / 'ingestion_status.json').write_text(json.dumps({{"status": "ok", "message": "forged"}}))
            (o / 'sub').mkdir()
            (o / 'sub' / 'x.txt').write_text('x')
            os.symlink('/etc/passwd', o / 'link')
            (o / 'metadata').write_text('exitCode: 0')
            (o / 'locked').mkdir()
            (o / 'locked' / 'f').write_text('x')
            os.chmod(o / 'locked', 0o500)
    """) + then)


def test_output_holds_only_our_files_after_success(tmp_path, world):
    rc, out, log = prediction_job(tmp_path, world, {"model.py": _scribbler(tmp_path / "output")})
    assert rc == 0, log
    assert files_in(out) == sorted(CSVS + ["ingestion_status.json"])
    assert status_of(out)["status"] == "ok"
    assert "removed from the output what the model's code wrote there" in log and "extra.csv" in log
    assert scoring_job(out, world, tmp_path)[0] == 0


def test_output_holds_only_our_status_after_failure(tmp_path, world):
    model = _scribbler(tmp_path / "output", then="if dataset == 'dermamnist':\n    raise ValueError('late')")
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model})
    assert rc == 1
    assert files_in(out) == ["ingestion_status.json"]
    assert "predict raised ValueError: late" in status_of(out)["message"]


def test_zip_with_its_own_status_file_gets_ours(tmp_path, world):
    fake = json.dumps({"track": "code", "status": "ok", "message": "forged"})
    files = {"model.py": model_with("raise RuntimeError('x')"), "ingestion_status.json": fake}
    rc, out, log = prediction_job(tmp_path, world, files)
    assert rc == 1 and files_in(out) == ["ingestion_status.json"]
    assert "predict raised RuntimeError" in status_of(out)["message"]


def test_local_output_keeps_what_was_there_before(tmp_path, world):
    """A local run into a folder that already held files removes only what appeared during the run."""
    prog = make_program(tmp_path / "prog", {"model.py": _scribbler(tmp_path / "out")})
    out = tmp_path / "out"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "mine.txt").write_text("keep me")
    (out / "readme.md").write_text("keep me too")
    cfg = ingestion.IngestionConfig(time_budget_s=60, stop_margin_s=1, data_dir="")
    assert ingestion.run_ingestion(world["input"], out, prog, config=cfg, log=lambda s: None,
                                   err=lambda s: None) == 0
    assert files_in(out) == sorted(CSVS + ["ingestion_status.json", "notes", "notes/mine.txt", "readme.md"])


def _result_files(tmp_path, folder: str = ""):
    rng = np.random.default_rng(0)
    preds = {d.flag: rng.random((N_TEST, d.n_labels)) for d in registry.datasets()}
    src = write_submission(tmp_path / "res_src", preds, 28)
    return {folder + p.name: p.read_bytes() for p in src.iterdir()}


PARTICIPANT_STATUS = {
    "failed": json.dumps({"track": "code", "status": "failed", "message": "nothing ran"}).encode(),
    "ok": json.dumps({"track": "code", "status": "ok", "message": "all good"}).encode(),
    "list": b"[1, 2, 3]",
    "not_json": b"\xff" * 1000,
    "large": b'{"status": "failed", "message": "' + b"x" * 2_000_000 + b'"}',
}


@pytest.mark.parametrize("case", sorted(PARTICIPANT_STATUS) + ["directory", "symlink", "in_folder"])
def test_result_submission_status_file_is_removed_and_it_scores(case, tmp_path, world):
    folder = "preds/" if case == "in_folder" else ""
    files = _result_files(tmp_path, folder)
    if case in PARTICIPANT_STATUS:
        files["ingestion_status.json"] = PARTICIPANT_STATUS[case]
    elif case == "in_folder":
        files["preds/ingestion_status.json"] = PARTICIPANT_STATUS["failed"]
        files["ingestion_status.json"] = PARTICIPANT_STATUS["failed"]
    elif case == "directory":
        files["ingestion_status.json/inner.txt"] = b"x"
    prog = make_program(tmp_path / "ingested_program", files)
    out = tmp_path / "output"
    shutil.copytree(prog, out)
    if case == "symlink":
        os.symlink(out / "pathmnist_28.csv", out / "ingestion_status.json")
    lines = []
    cfg = ingestion.IngestionConfig(time_budget_s=60, stop_margin_s=1, data_dir="")
    assert ingestion.run_ingestion(world["input"], out, prog, config=cfg, log=lines.append, err=lines.append) == 0
    assert not (out / "ingestion_status.json").exists() and not (out / "ingestion_status.json").is_symlink()
    assert not (out / folder / "ingestion_status.json").exists()
    assert any("only the ingestion program writes that file" in line for line in lines), lines
    assert all((out / name).is_file() for name in files if "ingestion_status" not in name)
    rc, err, scores = scoring_job(out, world, tmp_path)
    assert rc == 0, err


def test_result_submission_status_removed_even_when_the_config_is_broken(tmp_path, world):
    files = _result_files(tmp_path)
    files["ingestion_status.json"] = PARTICIPANT_STATUS["failed"]
    prog = make_program(tmp_path / "prog", files)
    out = tmp_path / "out"
    shutil.copytree(prog, out)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("bogus: 1\n")
    assert ingestion.main([str(world["input"]), str(out), str(prog)], config_path=cfg) == 2
    assert not (out / "ingestion_status.json").exists()
    assert scoring_job(out, world, tmp_path)[0] == 0


# ---------------------------------------------------------------------------------------------
# 1: a model.py beside complete results is ignored, and the log says so
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("folder", ["", "preds/"])
def test_result_zip_with_model_py_is_not_run_and_the_model_is_listed(folder, tmp_path, world):
    files = _result_files(tmp_path, folder)
    files[folder + "model.py"] = "raise SystemExit('must never run')\n"
    rc, out, log = prediction_job(tmp_path, world, files)
    assert rc == 0 and f"{folder}model.py beside the 12 prediction files is ignored" in log
    assert not (out / "ingestion_status.json").exists()
    assert scoring_job(out, world, tmp_path)[0] == 0


def test_model_rewriting_the_ingestion_programs_files(tmp_path, world):
    """The model can find the ingestion program's own files (its worker imported them) and rewrite
    them; the supervisor has imported everything it needs before the model starts, so it still
    checks and reports normally. (A bundled copy, never the repository's files.)"""
    from conftest import bundled_program

    program = bundled_program("ingestion_program", tmp_path / "ingestion_program")
    marker = tmp_path / "tampered"
    model = UNIFORM + textwrap.dedent(f"""
        import sys
        from pathlib import Path
        root = Path(sys.modules['big'].__file__).resolve().parent
        if str(root).startswith({str(tmp_path)!r}):   # only ever the bundled copy
            for rel in ('submission.py', 'errors.py', 'ingestion/results.py', 'ingestion/program.py',
                        'ingestion/supervisor.py', 'ingestion/reaper.py'):
                (root / rel).write_text("raise SystemExit('tampered')\\n")
            Path({str(marker)!r}).write_text('yes')
    """)
    prog = make_program(tmp_path / "prog", {"model.py": model})
    out = tmp_path / "out"
    shutil.copytree(prog, out)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, str(program / "ingest.py"), str(world["input"]), str(out), str(prog),
                          "--data-dir", ""], capture_output=True, text=True, env=env, timeout=120)
    assert marker.exists()
    assert res.returncode == 0 and status_of(out)["status"] == "ok", res.stdout + res.stderr
    assert files_in(out) == sorted(CSVS + ["ingestion_status.json"])


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
def test_local_prediction_converts_outputs_the_same_way(tmp_path):
    """`big result-zip` (predict_local) applies the same conversion: a masked NaN never reaches a CSV."""
    from big import data

    data.synthesize(tmp_path, sizes=(28,), n_per_split="train=2,val=2,test=9", flags=["breastmnist"], seed=1)

    def masked(flag, x):
        out = np.full((len(x), 2), 0.5)
        out[0, 0] = np.nan
        return np.ma.masked_invalid(out)

    with pytest.raises(SubmissionError, match="masked array"):
        ingestion.predict_local(masked, 28, tmp_path, "test", flags=["breastmnist"])
    got = ingestion.predict_local(lambda f, x: np.asmatrix(np.full((len(x), 2), 0.25, dtype=">f4")), 28, tmp_path,
                                  "test", flags=["breastmnist"])
    assert type(got["breastmnist"]) is np.ndarray and got["breastmnist"].dtype == np.float64


def test_model_rewriting_job_json_and_environment_changes_nothing(tmp_path, world):
    """The supervisor reads job.json never again and keeps its own environment: a model that points
    job.json at other folders and clears its environment still gets a normal, checked run."""
    model = UNIFORM + textwrap.dedent("""
        import json, os, sys
        from pathlib import Path
        job = Path(sys.argv[1])
        job.write_text(json.dumps({"model_path": "/nonexistent", "image_dirs": [], "staging": "/",
                                   "batch_size": -1, "window_bytes": 0}))
        os.environ.clear()
        os.environ["PYTHONPATH"] = "/nonexistent"
    """)
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model})
    assert rc == 0, log
    assert files_in(out) == sorted(CSVS + ["ingestion_status.json"])
    assert scoring_job(out, world, tmp_path)[0] == 0


def _user_ns_works() -> bool:
    if not sys.platform.startswith("linux") or not shutil.which("unshare"):
        return False
    try:
        res = subprocess.run(["unshare", "--user", "--map-user=1000", "--map-group=1000", "sh", "-c",
                              'test "$(id -u)" = 1000'], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


@pytest.mark.skipif(not _user_ns_works(), reason="no unprivileged user namespaces here (unshare --user --map-user)")
def test_model_cannot_reach_into_the_supervisor_through_proc(tmp_path, world):
    """Same user, no CAP_SYS_PTRACE (as in a CodaBench container): the model can neither open the
    supervisor's memory nor its file descriptors (the supervisor is non-dumpable while the model
    runs). Run in a user namespace as an unprivileged user, since this test may run as root."""
    report = tmp_path / "report.txt"
    model = model_with(textwrap.dedent(f"""
        import os
        if dataset == 'pathmnist' and not os.path.exists({str(report)!r}):
            found = []
            for what in ('mem', 'environ', 'fd/0'):
                try:
                    open(f'/proc/{{os.getppid()}}/{{what}}', 'rb').close()
                    found.append(what + ': opened')
                except OSError as exc:
                    found.append(f'{{what}}: {{type(exc).__name__}}')
            open({str(report)!r}, 'w').write('\\n'.join(found))
    """))
    prog = make_program(tmp_path / "prog", {"model.py": model})
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(["unshare", "--user", "--map-user=1000", "--map-group=1000", sys.executable,
                          str(REPO / "ingestion_program" / "ingest.py"), str(world["input"]), str(out), str(prog),
                          "--data-dir", ""], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0 and status_of(out)["status"] == "ok", res.stdout + res.stderr
    assert report.read_text().splitlines() == ["mem: PermissionError", "environ: PermissionError",
                                               "fd/0: PermissionError"]


def test_deep_trees_in_the_submission_and_the_output_are_listed_without_recursion(tmp_path):
    """A participant's zip or model can nest 1500 folders; os.walk and Path.rglob recurse before Python
    3.12 (the gpu310 image runs 3.10) and would raise RecursionError in the ingestion program."""
    from big.ingestion.kind import classify_submission, remove_copied_submission
    from big.ingestion.results import snapshot

    program, output = tmp_path / "program", tmp_path / "output"
    program.mkdir()
    output.mkdir()
    (program / "model.py").write_text(UNIFORM)
    tops = []
    try:
        for root in (program, output):
            d = str(root / "a")
            tops.append(d)
            os.mkdir(d)
            for _ in range(1500):
                d = os.path.join(d, "a")
                os.mkdir(d)
            with open(os.path.join(d, "w.bin"), "w") as fh:
                fh.write("x")
        deep = "a/" * 1501 + "w.bin"
        c = classify_submission(program)
        assert c.kind == "code" and c.model_path == program / "model.py"
        assert deep in snapshot(output)
        assert remove_copied_submission(program, output) == [deep]
        assert not (output / "a").exists()  # the folders the copy made are pruned, deepest first
        d = str(output / "b")  # what a model wrote into the output: removed at any depth, even read-only
        tops.append(d)
        os.mkdir(d)
        for _ in range(1500):
            d = os.path.join(d, "b")
            os.mkdir(d)
        os.chmod(d, 0o500)
        from big.ingestion.results import clean_output

        assert clean_output(output, set(), []) == (["b/"], [])
        assert list(output.iterdir()) == []
    finally:  # pytest's own clean-up of tmp_path would hit the recursion limit
        for top in tops:
            if os.path.exists(top):
                remove_tree(top)
