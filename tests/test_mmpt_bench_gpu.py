"""benchmarks/bench_gpu.py on the CPU with a tiny configuration, so the GPU script cannot rot.
(It is never run on a GPU by the tests: figures come from a lent device, see baselines/README.md.)"""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from big import registry  # noqa: E402

from conftest import REPO, image_env, image_python  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.slow]
SCRIPT = REPO / "benchmarks" / "bench_gpu.py"


def _run(*args, python=sys.executable, env=None):
    env = env or {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(python), str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=900, cwd=REPO)


def test_tiny_cpu_run_writes_every_measurement(tmp_path):
    out = tmp_path / "bench.json"
    r = _run("--tiny", "--device", "cpu", "--models", "resnet10t,vit_tiny_patch16_224", "--warmup", "1", "--steps", "1",
             "--out", out)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    env = res["environment"]
    assert env["torch"] and env["timm"] and env["device"] == "cpu" and env["gpu_name"] is None
    assert "cuda" in env and "cudnn" in env and "git_commit" in env
    combos = {(t["model"], t["input"], t["amp"]) for t in res["training"]}
    assert combos == {(m, i, a) for m in ("resnet10t", "vit_tiny_patch16_224") for i in ("28pad224", "224")
                      for a in (False, True)}
    for t in res["training"]:
        assert t["steps_per_s"] > 0 and t["images_per_s"] > 0 and 0 <= t["data_wait_share"] < 1
        assert t["losses_finite"] and t["fed_size"] == 224 and t["gpu_util_mean"] is None
    assert [i["bn_mode"] for i in res["ingestion"]] == ["shared", "per_dataset"]
    for i in res["ingestion"]:
        assert i["returncode"] == 0 and i["csv_files"] == len(registry.flags()) and i["status"]["status"] == "ok"
        assert i["images"] == 4 * len(registry.flags()) and i["images_per_s"] > 0
    assert res["skipped"] == [] and res["errors"] == [] and res["wall_s"] > 0


def test_a_failing_measurement_is_recorded_and_the_rest_still_runs(tmp_path):
    out = tmp_path / "bench.json"
    r = _run("--tiny", "--device", "cpu", "--models", "nosuchmodel,resnet10t", "--inputs", "28pad224", "--amp", "off",
             "--steps", "1", "--warmup", "0", "--ingest-n", "0", "--out", out)
    assert r.returncode == 1 and "nosuchmodel 28pad224 amp off: FAILED" in r.stdout
    res = json.loads(out.read_text())
    assert [e["what"] for e in res["errors"]] == ["nosuchmodel 28pad224 amp off"]
    assert "nosuchmodel" in res["errors"][0]["error"]
    assert [t["model"] for t in res["training"]] == ["resnet10t"]


def test_time_budget_skips_and_says_so(tmp_path):
    out = tmp_path / "bench.json"
    r = _run("--tiny", "--device", "cpu", "--models", "resnet10t", "--inputs", "28pad224", "--amp", "off",
             "--steps", "1", "--warmup", "0", "--budget-s", "0", "--out", out)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["training"] == [] and res["ingestion"] == []
    assert any("resnet10t 28pad224 amp off: time budget" in s for s in res["skipped"])
    assert any(s.startswith("ingestion: time budget") for s in res["skipped"])


def test_clear_messages(tmp_path):
    import torch

    if not torch.cuda.is_available():
        r = _run("--device", "cuda", "--out", tmp_path / "x.json")
        assert r.returncode == 2 and "sees no CUDA device" in r.stderr and "Traceback" not in r.stderr
    r = _run("--device", "cpu", "--inputs", "32", "--out", tmp_path / "x.json")
    assert r.returncode == 2 and "bad settings" in r.stderr
    py312 = image_python("py312")  # numpy and pyyaml, no torch/timm
    r = _run("--out", tmp_path / "x.json", python=py312, env=image_env())
    assert r.returncode == 1 and "needs torch, timm" in r.stderr and "Traceback" not in r.stderr
