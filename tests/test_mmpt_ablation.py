"""The BatchNorm ablation runner (baselines/experiments/bn_ablation.py): its smoke mode end to end
(synthetic data, tiny model, seconds) and the aggregation into the table."""
import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from big import registry  # noqa: E402
from big.mmpt import ablation  # noqa: E402

from conftest import REPO  # noqa: E402

pytestmark = pytest.mark.torch
SCRIPT = REPO / "baselines" / "experiments" / "bn_ablation.py"


def _run(*args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=900)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    r = _run("--smoke", "--out", out, "--seeds", "1,2", "--threads", "1")
    return out, r


def test_smoke_run_writes_table_plot_and_timings(smoke):
    out, r = smoke
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    for name in ("ablation.md", "ablation.csv", "ablation.json", "ablation.png", "timings.json"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "ablation.json").read_text())["meta"]
    assert meta["smoke"] is True and meta["genuine_data"] is False and meta["seeds"] == [1, 2]
    assert meta["evaluations"] == len(ablation.VARIANTS) * len(ablation.CRITERIA) * 2 and meta["missing"] == []
    timings = json.loads((out / "timings.json").read_text())
    assert {k.split("/")[0] for k in timings} == {"train", "recalibrate", "evaluate"}
    assert all(v > 0 for v in timings.values())
    with open(out / "ablation.csv") as fh:
        rows = list(csv.DictReader(fh))
    datasets = list(ablation.DATASETS) + ["mean"]
    assert len(rows) == len(ablation.VARIANTS) * len(ablation.CRITERIA) * len(datasets)
    table = (out / "ablation.md").read_text()
    for variant, _, _ in ablation.VARIANTS:
        assert f"| {variant} | mean_auc |" in table and f"| {variant} | val_loss |" in table
    # the recalibrated checkpoints are per_dataset versions of the shared ones
    import torch

    for seed in (1, 2):
        for crit in ablation.CRITERIA:
            ck = torch.load(ablation.checkpoint_of(out, "shared + recalibrate-bn", crit, seed), weights_only=False)
            src = ablation.checkpoint_of(out, "shared", crit, seed)
            assert ck["config"]["bn_mode"] == "per_dataset" and ck["recalibrated"]["from"] == str(src)
            assert ck["selected_by"] == crit


def test_table_is_the_mean_and_std_of_the_evaluations(smoke):
    out, _ = smoke
    rows = json.loads((out / "ablation.json").read_text())["rows"]
    row = next(r for r in rows if r["variant"] == "per_dataset" and r["select_by"] == "mean_auc"
               and r["dataset"] == "retinamnist")
    evs = [json.loads((ablation.eval_dir(out, "per_dataset", "mean_auc", s) / "evaluation.json").read_text())
           for s in (1, 2)]
    for k in registry.METRIC_KEYS:
        vals = [e["datasets"]["retinamnist"][k] for e in evs]
        assert row[f"{k}_mean"] == pytest.approx(np.mean(vals), abs=1e-12)
        assert row[f"{k}_std"] == pytest.approx(np.std(vals, ddof=1), abs=1e-12)
    assert row["epochs_selected"] == [e["epoch"] for e in evs]
    assert all(e["split"] == "test" and e["selected_by"] == "mean_auc" for e in evs)


def test_rerun_skips_finished_steps_and_report_only_regenerates(smoke):
    out, _ = smoke
    before = json.loads((out / "timings.json").read_text())
    (out / "ablation.md").unlink()
    r = _run("--smoke", "--out", out, "--seeds", "1,2", "--threads", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "trained already" in r.stdout and "evaluated" not in r.stdout
    assert json.loads((out / "timings.json").read_text()) == before  # nothing was redone
    (out / "ablation.md").unlink()
    r = _run("--smoke", "--out", out, "--seeds", "1,2", "--report-only")
    assert r.returncode == 0 and (out / "ablation.md").is_file()
    # a seed without evaluations: the table is written from what exists, and the exit code says it is incomplete
    r = _run("--smoke", "--out", out, "--seeds", "1,2,3", "--report-only")
    assert r.returncode == 3 and "6 missing" in r.stdout


def test_bad_arguments_are_clear_messages(tmp_path):
    r = _run("--out", tmp_path / "x")
    assert r.returncode == 1 and "--data-root" in r.stderr and "Traceback" not in r.stderr
    r = _run("--out", tmp_path / "x", "--report-only", "--data-root", tmp_path)
    assert r.returncode == 1 and "no evaluation" in r.stderr and "Traceback" not in r.stderr
    r = _run("--out", tmp_path / "x", "--datasets", "nomnist")
    assert r.returncode == 2 and "unknown dataset flag" in r.stderr
    r = _run("--out", tmp_path / "x", "--smoke", "--epochs", "0")
    assert r.returncode == 2 and "at least 1" in r.stderr


def test_aggregate_and_markdown():
    def ev(auc, epoch):
        d = {f: {"auc": auc, "balacc": 0.5, "kappa": None} for f in ablation.DATASETS}
        return {"datasets": d, "mean": {"auc": auc, "balacc": 0.5, "kappa": None}, "epoch": epoch}

    evals = {("shared", "val_loss", 1): ev(0.6, 3), ("shared", "val_loss", 2): ev(0.8, 5)}
    rows = ablation.aggregate(evals, ablation.DATASETS)
    assert len(rows) == len(ablation.DATASETS) + 1
    r = rows[0]
    assert r["auc_mean"] == pytest.approx(0.7) and r["auc_std"] == pytest.approx(math.sqrt(0.02))
    assert math.isnan(r["kappa_mean"]) and r["epochs_selected"] == [3, 5]
    md = ablation.markdown(rows)
    assert "| pneumoniamnist | shared | val_loss | 0.700 ± 0.141 | 0.500 ± 0.000 | n/a | 3, 5 |" in md
    assert "| mean (3) | shared | val_loss |" in md
    one = ablation.aggregate({("shared", "val_loss", 1): ev(0.6, 3)}, ablation.DATASETS)
    assert math.isnan(one[0]["auc_std"]) and ablation._strict(one)[0]["auc_std"] is None
    assert "| 0.600 | 0.500 | n/a | 3 |" in ablation.markdown(one)  # one seed: no "± std"


def test_readme_table_is_the_committed_measured_result():
    """baselines/README.md shows exactly the table of the committed ablation.json of the real run."""
    res = json.loads((REPO / "baselines" / "experiments" / "bn_ablation_results.json").read_text())
    meta = res["meta"]
    assert meta["genuine_data"] is True and meta["smoke"] is False and meta["missing"] == []
    assert meta["epochs"] == 10 and len(meta["seeds"]) == 3 and meta["split"] == "test"
    assert meta["evaluations"] == len(ablation.VARIANTS) * len(ablation.CRITERIA) * len(meta["seeds"])
    table = ablation.markdown(ablation.rows_from_json(res))
    assert table in (REPO / "baselines" / "README.md").read_text()
