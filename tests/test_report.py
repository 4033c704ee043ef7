"""detailed_results.html and the plots: produced on small synthetic data, self-contained, complete,
and never able to change a score."""
from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from big import metrics, plots, registry, scoring
from big.reference import Reference, write_reference
from big.submission import write_submission
from conftest import labels_of, oracle_predictions

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIX = [f"{m}_{k}.png" for m in registry.METRIC_KEYS for k in ("lineplot", "boxplot")]


def _score(tmp_path: Path, ref_dir: Path, *, size=28, n_boot=40, noise=0.6, name="out"):
    sub = write_submission(tmp_path / f"{name}.zip", oracle_predictions(labels_of(ref_dir), noise=noise, seed=2), size)
    out = tmp_path / name
    err = io.StringIO()
    code = scoring.run(sub, ref_dir, out, config=scoring.ScoringConfig(n_boot=n_boot, seed=3),
                       out=io.StringIO(), err=err)
    return code, out, err.getvalue()


@pytest.fixture(scope="module")
def scored(synth_ref, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    code, out, err = _score(tmp, synth_ref)
    assert code == 0, err
    return out, err


def test_page_is_self_contained_and_complete(scored):
    out, err = scored
    assert "detailed results failed" not in err, err
    page = (out / "detailed_results.html").read_text(encoding="utf-8")
    details = json.loads((out / "details.json").read_text())
    # every dataset named, in a table row, with its three intervals
    for ds in registry.datasets():
        assert re.search(rf"<td class=\"l\">{ds.flag}</td>", page), ds.flag
        for m in registry.METRIC_KEYS:
            lo, hi = details["datasets"][ds.flag]["ci"][m]
            assert f"[{lo:.4f}, {hi:.4f}]" in page
    lo, hi = details["mean"]["ci"]["auc"]
    assert "mean of 12" in page and f"[{lo:.4f}, {hi:.4f}]" in page
    # images embedded as base64 PNG data URIs, no external references of any kind
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 6 + 2 * 12
    assert all(base64.b64decode(u)[:8] == PNG_MAGIC for u in uris)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page, re.I)
    assert "http://" not in page and "https://" not in page and "<script" not in page.lower()
    assert not re.search(r'<img[^>]+src="(?!data:)', page)
    # the PNGs beside the page
    names = SIX + [f"roc_{f}.png" for f in registry.flags()] + [f"confusion_{f}.png" for f in registry.flags()]
    for n in names:
        assert (out / n).read_bytes()[:8] == PNG_MAGIC, n
    assert not list(out.glob("*.partial"))
    # run metadata and the synthetic banner
    assert details["reference_sha256"] in page
    assert "SYNTHETIC REFERENCE DATA" in page
    assert f"B = {details['n_boot']}, seed {details['seed']}" in page
    assert f"<td class=\"l\" style=\"white-space:normal;overflow-wrap:anywhere\">{details['scorer_version']}</td>" in page


def test_baselines_are_overlaid_at_the_submission_resolution(scored):
    out, _ = scored
    page = (out / "detailed_results.html").read_text(encoding="utf-8")
    assert "Published baselines at 28&times;28" in page
    assert "Overlaid baselines at this resolution: resnet18 mm-PT, resnet18 mm-PT weighted" in page
    # thesis Table 5, ViT-B/16 mm-PT unweighted at 28 px: AUC 0.8986, balanced accuracy 0.6510, kappa 0.5653
    row = re.search(r"<tr><td class=\"l\">vit_base_patch16_224</td><td class=\"l\">mm-PT</td><td class=\"l\">no</td>(.*?)</tr>", page)
    assert row and all(v in row.group(1) for v in ("0.8986", "0.6510", "0.5653"))


def test_genuine_reference_has_no_synthetic_banner(synth_ref, tmp_path):
    ref = Reference(synth_ref)
    genuine = write_reference(tmp_path / "ref", ref.split, labels_of(synth_ref), {}, synthetic=False)
    code, out, err = _score(tmp_path, genuine, size=64, n_boot=0)
    assert code == 0, err
    page = (out / "detailed_results.html").read_text(encoding="utf-8")
    assert "SYNTHETIC" not in page
    assert "genuine MedMNIST+ labels" in page and "bootstrap was switched off" in page
    assert "Published baselines at 64&times;64" in page


def test_missing_baseline_tables_are_said_not_failed(synth_ref, tmp_path, monkeypatch):
    monkeypatch.setenv("BIG_BASELINE_TABLES", str(tmp_path / "nowhere"))
    code, out, err = _score(tmp_path, synth_ref, n_boot=0)
    assert code == 0 and "detailed results failed" not in err
    page = (out / "detailed_results.html").read_text(encoding="utf-8")
    assert "no baseline tables available" in page
    for n in SIX:
        assert (out / n).is_file()


def test_a_report_failure_keeps_the_score_and_exit_code(synth_ref, tmp_path, monkeypatch):
    from big import report

    def boom(*a, **k):
        raise RuntimeError("plotting exploded")

    monkeypatch.setattr(report, "write_report", boom)
    code, out, err = _score(tmp_path, synth_ref, n_boot=10)
    assert code == 0
    scores = json.loads((out / "scores.json").read_text())
    assert list(scores) == registry.score_keys()
    assert (out / "details.json").is_file()
    assert "detailed results failed" in err and "plotting exploded" in err


def test_one_broken_figure_leaves_the_rest_of_the_page(synth_ref, tmp_path, monkeypatch, capsys):
    def boom(*a, **k):
        raise ValueError("no ROC today")

    monkeypatch.setattr(plots, "roc_curves", boom)
    code, out, err = _score(tmp_path, synth_ref, n_boot=0)
    assert code == 0
    page = (out / "detailed_results.html").read_text(encoding="utf-8")
    assert "the figure could not be drawn" in page and "no ROC today" in page
    assert page.count("data:image/png;base64,") == 6 + 12  # website plots and confusion matrices remain
    assert "figure roc_pathmnist failed" in capsys.readouterr().err


def test_write_report_without_predictions(scored, tmp_path):
    from big import report

    out, _ = scored
    details = json.loads((out / "details.json").read_text())
    page = report.write_report(tmp_path / "only", details, None, None).read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 6
    assert "ROC curves and confusion matrices" not in page


# ---------------------------------------------------------------------------------------------
# big.plots
# ---------------------------------------------------------------------------------------------

def test_series_colours_are_distinct_and_equal_names_stay_apart(tmp_path):
    for n in (1, 2, 10, 11, 25, 40):
        cols = plots.series_colours(n)
        assert len(cols) == n and len(set(cols)) == n
    items = plots._series_list([("model", {"pathmnist": 0.9}), ("model", {"pathmnist": 0.8}), ("model", {})])
    assert [name for name, _ in items] == ["model", "model (2)", "model (3)"]
    vals = {f: 0.5 + 0.03 * i for i, f in enumerate(registry.flags())}
    for fn in (plots.metric_line_plot, plots.metric_box_plot):
        p = fn([("same", vals), ("same", {f: v - 0.1 for f, v in vals.items()})], "auc", tmp_path / f"{fn.__name__}.png",
               {"per-dataset baseline": vals, "mean baseline": 0.7, "no value": None})
        assert p.read_bytes()[:8] == PNG_MAGIC
    paths = plots.website_plots({"a": {m: vals for m in registry.METRIC_KEYS}}, tmp_path / "six",
                                {"auc": {"b": 0.8}}, prefix="x_")
    assert sorted(p.name for p in paths.values()) == sorted("x_" + n for n in SIX)


def _case(kind, c, n=300, seed=0):
    rng = np.random.default_rng(seed)
    if kind == registry.MULTILABEL:
        y = (rng.random((n, c)) < 0.3).astype(np.uint8)
        y[0], y[1] = 1, 0
    else:
        y = rng.integers(0, c, size=(n, 1)).astype(np.uint8)
        y[:c, 0] = np.arange(c)
    return y, np.round(rng.random((n, c)), 2)


@pytest.mark.parametrize("kind,c", [(registry.BINARY, 2), (registry.MULTICLASS, 5), (registry.MULTILABEL, 14)])
def test_roc_points_integrate_to_the_benchmark_auc(kind, c):
    y, s = _case(kind, c)
    aucs = []
    for j in ([1] if kind == registry.BINARY else range(c)):
        yy = (y[:, j] == 1) if kind == registry.MULTILABEL else (y[:, 0] == j)
        fpr, tpr = plots.roc_points(yy, s[:, j], max_points=10**6)
        assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
        aucs.append(plots._trapezoid(tpr, fpr))
    assert abs(np.mean(aucs) - metrics.auc_score(y, s, kind=kind)) < 1e-12
    fpr, tpr = plots.roc_points(y[:, 0] == 1 if kind == registry.MULTILABEL else y[:, 0] == 1, s[:, 1], max_points=50)
    assert fpr.size <= 51 and fpr[-1] == 1
    assert plots.roc_points(np.zeros(5, bool), np.arange(5.0))[0].size == 0  # a single class: no curve


def test_confusion_counts_follow_the_benchmark_rules():
    y = np.array([[0], [1], [1], [0]])
    s = np.array([[0.5, 0.5], [0.2, 0.8], [0.6, 0.4], [0.9, 0.1]])  # 0.5 is not > 0.5
    assert plots.confusion_counts(y, s, kind=registry.BINARY).tolist() == [[2, 0], [1, 1]]
    y, s = _case(registry.MULTICLASS, 5)
    cm = plots.confusion_counts(y, s, kind=registry.MULTICLASS)
    assert cm.shape == (5, 5) and cm.sum() == len(y)
    assert np.array_equal(cm.sum(axis=1), np.bincount(y[:, 0], minlength=5))
    assert np.trace(cm) == int((np.argmax(s, axis=1) == y[:, 0]).sum())
    y, s = _case(registry.MULTILABEL, 14)
    cm = plots.confusion_counts(y, s, kind=registry.MULTILABEL)
    assert cm.shape == (14, 4) and np.all(cm.sum(axis=1) == len(y))
    assert np.array_equal(cm[:, 3], ((y == 1) & (s > 0.5)).sum(axis=0))  # TP per label


@pytest.mark.parametrize("flag", ["breastmnist", "pathmnist", "chestmnist", "retinamnist"])
def test_per_dataset_figures(flag, tmp_path):
    ds = registry.get(flag)
    kind = ds.kind
    y, s = _case(kind, ds.n_labels)
    y[:, 0] = np.where(y[:, 0] == ds.n_labels - 1, 0, y[:, 0]) if kind == registry.MULTICLASS else y[:, 0]
    for fn, name in ((plots.roc_curves, "roc"), (plots.confusion_matrix_plot, "cm")):
        p = fn(y, s, kind=kind, path=tmp_path / f"{name}.png", class_names=ds.labels, title=flag)
        assert p.read_bytes()[:8] == PNG_MAGIC


def test_big_report_redraws_the_page(scored, synth_ref, tmp_path, capsys):
    import shutil

    from big import cli

    out = tmp_path / "copy"
    shutil.copytree(scored[0], out)
    (out / "detailed_results.html").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "detailed_results.html").read_text().count("data:image/png;base64,") == 6
    # with the predictions: ROC curves and confusion matrices again
    labels = labels_of(synth_ref)
    sub = write_submission(tmp_path / "s.zip", oracle_predictions(labels, noise=0.6, seed=2), 28)
    assert cli.main(["report", str(out), "--submission", str(sub), "--reference", str(synth_ref)]) == 0
    assert (out / "detailed_results.html").read_text().count("data:image/png;base64,") == 30
    # another reference than the one scored against is refused
    other = write_reference(tmp_path / "other", "test", {f: 1 - v if f == "breastmnist" else v for f, v in labels.items()},
                            {}, synthetic=True)
    capsys.readouterr()
    assert cli.main(["report", str(out), "--submission", str(sub), "--reference", str(other)]) == 1
    assert "differs from the one these scores were computed with" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path)]) == 1
