"""big compare: results loaded from scoring outputs, compatibility checks, tables, the six plots, the CLI."""
from __future__ import annotations

import csv
import io
import json
import math

import pytest

from conftest import labels_of, needs_genuine, oracle_predictions

from big import cli, registry, scoring
from big.analysis import compare
from big.errors import UsageError
from big.reference import build_reference
from big.submission import write_submission

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _score(sub, ref, out, n_boot=20):
    code = scoring.run(sub, ref, out, config=scoring.ScoringConfig(n_boot=n_boot, report=False),
                       out=io.StringIO(), err=io.StringIO())
    assert code == 0
    return out


@pytest.fixture(scope="module")
def scored(synth_ref, tmp_path_factory):
    """Two submissions at 28 px (A noisier than B), one at 64 px, each scored by the scorer."""
    root = tmp_path_factory.mktemp("cmp")
    lab = labels_of(synth_ref)
    subs = {
        "a": write_submission(root / "a.zip", oracle_predictions(lab, noise=0.8, seed=1), 28),
        "b": write_submission(root / "b.zip", oracle_predictions(lab, noise=0.6, seed=2), 28),
        "c64": write_submission(root / "c64.zip", oracle_predictions(lab, noise=0.7, seed=3), 64),
    }
    outs = {k: _score(p, synth_ref, root / "scored" / k) for k, p in subs.items()}
    return root, subs, outs


def test_result_matches_details(scored):
    _, _, outs = scored
    (res,) = compare.load_results([str(outs["a"])])
    details = json.loads((outs["a"] / "details.json").read_text())
    assert res.name == "a" and res.resolution == 28 and res.split == "test"
    for flag in registry.flags():
        for m in registry.METRIC_KEYS:
            assert res.values[flag][m] == details["datasets"][flag][m]
            assert res.ci[flag][m] == tuple(details["datasets"][flag]["ci"][m])
    assert res.mean == {m: details["mean"][m] for m in registry.METRIC_KEYS}
    assert res.mean_ci["auc"] == tuple(details["mean"]["ci"]["auc"]) and res.n_boot == 20


def test_names_from_specs(scored, tmp_path):
    _, _, outs = scored
    res = compare.load_results([f"first={outs['a']}", str(outs["b"] / "details.json")])
    assert [r.name for r in res] == ["first", "b"]
    # two folders with the same name get their parent folder prefixed
    other = tmp_path / "run2" / "a"
    other.mkdir(parents=True)
    (other / "details.json").write_text((outs["a"] / "details.json").read_text())
    names = [r.name for r in compare.load_results([str(outs["a"]), str(other)])]
    assert names == ["scored/a", "run2/a"]
    with pytest.raises(UsageError, match="more than one result"):
        compare.load_results([f"x={outs['a']}", f"x={outs['b']}"])


def test_difference_table_values(scored):
    _, _, outs = scored
    res = compare.load_results([str(outs["a"]), str(outs["b"])])
    rows = list(csv.DictReader(io.StringIO(compare.difference_csv(res))))
    assert len(rows) == 3 * 13
    assert list(rows[0]) == ["metric", "dataset", "a", "b", "b - a"]
    for row in rows:
        m, flag = row["metric"], row["dataset"]
        va = res[0].mean[m] if flag == "mean" else res[0].values[flag][m]
        vb = res[1].mean[m] if flag == "mean" else res[1].values[flag][m]
        assert float(row["a"]) == pytest.approx(va, abs=1e-10)
        assert float(row["b - a"]) == pytest.approx(vb - va, abs=1e-9)
    md = compare.difference_markdown(res)
    assert "## AUC" in md and "## Cohen's kappa" in md and "| b - a |" in md
    assert "SYNTHETIC" in md
    auc_section = md.split("## AUC")[1].split("## Balanced")[0]
    mean_line = next(ln for ln in auc_section.splitlines() if ln.startswith("| **Mean"))
    assert mean_line.rstrip(" |").endswith(f"{res[1].mean['auc'] - res[0].mean['auc']:+.4f}")


def test_write_comparison_six_plots_and_tables(scored, tmp_path):
    _, _, outs = scored
    res = compare.load_results([str(outs["a"]), str(outs["b"])])
    files = compare.write_comparison(res, tmp_path / "out", log=lambda s: None)
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert pngs == sorted(f"{m}_{k}.png" for m in registry.METRIC_KEYS for k in ("lineplot", "boxplot"))
    for p in (tmp_path / "out").glob("*.png"):
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 5000
    page = (tmp_path / "out" / "compare.html").read_text()
    assert page.count("data:image/png;base64,") == 6 and "http" not in page.split("<body>")[1]
    assert {"differences.md", "differences.csv", "compare.html"} <= set(files)
    assert not list((tmp_path / "out").glob("*.partial"))


def test_single_result_and_many(scored, tmp_path):
    _, _, outs = scored
    one = compare.load_results([str(outs["a"])])
    compare.write_comparison(one, tmp_path / "one", plots=False, log=lambda s: None)
    head = (tmp_path / "one" / "differences.csv").read_text().splitlines()[0]
    assert head == "metric,dataset,a"
    many = compare.load_results([f"r{i}={outs['a' if i % 2 else 'b']}" for i in range(12)])
    compare.write_plots(many, tmp_path / "many", baselines="none")
    assert len(list((tmp_path / "many").glob("*.png"))) == 6


def test_refuses_mixed_resolutions(scored):
    _, _, outs = scored
    res = compare.load_results([str(outs["a"]), str(outs["c64"])])
    with pytest.raises(UsageError) as exc:
        compare.check_compatible(res)
    msg = str(exc.value.problems[0])
    assert "different resolutions" in msg and "a: 28 px" in msg and "c64: 64 px" in msg


def test_refuses_mixed_splits_and_references(scored, synth_root, tmp_path):
    root, subs, outs = scored
    val_ref = build_reference(synth_root, "val", tmp_path / "val_ref", allow_synthetic=True)
    val_labels = labels_of(val_ref)
    v = write_submission(tmp_path / "v.zip", oracle_predictions(val_labels, noise=0.5), 28)
    val_out = _score(v, val_ref, tmp_path / "v_out")
    res = compare.load_results([str(outs["a"]), str(val_out)])
    with pytest.raises(UsageError, match="different splits") as exc:
        compare.check_compatible(res)
    assert "a: test" in str(exc.value.problems[0]) and "v_out: val" in str(exc.value.problems[0])
    # same split, other labels: a details.json with another reference digest
    d = json.loads((outs["b"] / "details.json").read_text())
    d["reference_sha256"] = "0" * 64
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "details.json").write_text(json.dumps(d))
    res = compare.load_results([str(outs["a"]), str(tmp_path / "other")])
    with pytest.raises(UsageError, match="different reference labels"):
        compare.check_compatible(res)


def test_bad_result_inputs(scored, tmp_path):
    root, subs, outs = scored
    (tmp_path / "empty").mkdir()
    (tmp_path / "scores_only").mkdir()
    (tmp_path / "scores_only" / "scores.json").write_text("{}")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "details.json").write_text("{not json")
    d = json.loads((outs["a"] / "details.json").read_text())
    d["datasets"]["bloodmnist"]["kappa"] = None
    del d["datasets"]["octmnist"]
    (tmp_path / "edited").mkdir()
    (tmp_path / "edited" / "details.json").write_text(json.dumps(d))
    with pytest.raises(UsageError) as exc:
        compare.load_results([str(tmp_path / x) for x in ("empty", "scores_only", "broken", "edited", "missing")]
                             + [str(subs["a"])])
    text = "\n".join(exc.value.report())
    assert "not a scoring output folder" in text
    assert "scores.json but no details.json" in text
    assert "cannot read it as JSON" in text and "broken/details.json" in text
    assert "no results for octmnist" in text and "bloodmnist: kappa is None" in text
    assert "missing does not exist" in text
    assert "is a submission, not a scoring result" in text
    # a hand-edited mean is caught
    d = json.loads((outs["a"] / "details.json").read_text())
    d["mean"]["auc"] += 0.01
    (tmp_path / "mean").mkdir()
    (tmp_path / "mean" / "details.json").write_text(json.dumps(d))
    with pytest.raises(UsageError, match="differs from the mean"):
        compare.load_results([str(tmp_path / "mean")])


def test_cli_compare(scored, tmp_path, capsys):
    _, _, outs = scored
    code = cli.main(["compare", f"A={outs['a']}", f"B={outs['b']}", "--out", str(tmp_path / "o"),
                     "--baselines", "none"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "differences.md" in printed and "A " in printed
    code = cli.main(["compare", str(outs["a"]), str(outs["c64"]), "--out", str(tmp_path / "o2"), "--no-plots"])
    err = capsys.readouterr().err
    assert code == 1 and "different resolutions" in err.splitlines()[-1]
    assert not (tmp_path / "o2").exists()  # nothing written when refused
    assert cli.main(["compare", "--out", str(tmp_path / "o3")]) == 1
    assert "nothing to compare" in capsys.readouterr().err


def test_cli_compare_predictions(scored, synth_ref, tmp_path, capsys):
    _, subs, _ = scored
    code = cli.main(["compare", "--predictions", f"noisy={subs['a']}", f"clean={subs['b']}", "--reference",
                     str(synth_ref), "--out", str(tmp_path / "p"), "--bootstrap", "50", "--baselines", "none"])
    assert code == 0, capsys.readouterr().err
    for name in ("significance.md", "significance.csv", "significance.json", "differences.md", "compare.html"):
        assert (tmp_path / "p" / name).is_file()
    assert len(list((tmp_path / "p").glob("*.png"))) == 6
    sig = json.loads((tmp_path / "p" / "significance.json").read_text())
    assert sig["a"] == "noisy" and sig["b"] == "clean" and sig["n_boot"] == 50
    page = (tmp_path / "p" / "compare.html").read_text()
    assert "Paired bootstrap" in page
    # mixing resolutions and missing --reference are refused
    assert cli.main(["compare", "--predictions", str(subs["a"]), str(subs["c64"]), "--reference", str(synth_ref),
                     "--out", str(tmp_path / "q")]) == 1
    assert "different resolutions" in capsys.readouterr().err
    assert cli.main(["compare", "--predictions", str(subs["a"]), str(subs["b"]), "--out", str(tmp_path / "r")]) == 1
    assert "needs --reference" in capsys.readouterr().err


def test_cli_compare_predictions_bad_submission(scored, synth_ref, tmp_path, capsys):
    _, subs, _ = scored
    lab = labels_of(synth_ref)
    p = oracle_predictions(lab, noise=0.5)
    p["dermamnist"] = p["dermamnist"][:, :3]
    bad = write_submission(tmp_path / "bad.zip", p, 28)
    code = cli.main(["compare", "--predictions", str(subs["a"]), str(bad), "--reference", str(synth_ref),
                     "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "bad: dermamnist_28.csv" in err and "wrong header" in err


@needs_genuine
def test_compare_on_genuine_labels(mixed_root, tmp_path):
    """Genuine BreastMNIST/PneumoniaMNIST/RetinaMNIST test labels beside synthetic ones."""
    ref = build_reference(mixed_root, "test", tmp_path / "ref", allow_synthetic=True)
    lab = labels_of(ref)
    assert lab["breastmnist"].shape == (156, 1) and lab["retinamnist"].shape == (400, 1)
    a = _score(write_submission(tmp_path / "a.zip", oracle_predictions(lab, noise=0.9, seed=1), 28), ref,
               tmp_path / "sa")
    b = _score(write_submission(tmp_path / "b.zip", oracle_predictions(lab, noise=0.6, seed=2), 28), ref,
               tmp_path / "sb")
    res = compare.load_results([str(a), str(b)])
    compare.write_comparison(res, tmp_path / "out", log=lambda s: None)
    rows = list(csv.DictReader(open(tmp_path / "out" / "differences.csv")))
    breast = next(r for r in rows if r["dataset"] == "breastmnist" and r["metric"] == "auc")
    assert float(breast["sb - sa"]) > 0 and math.isfinite(float(breast["sa"]))
    assert len(list((tmp_path / "out").glob("*.png"))) == 6


def test_plots_survive_broken_baseline_tables(scored, tmp_path, monkeypatch):
    _, _, outs = scored
    bad = tmp_path / "tables"
    bad.mkdir()
    (bad / "means.csv").write_text("wrong,header\n1,2\n")
    (bad / "per_dataset.csv").write_text("wrong,header\n1,2\n")
    monkeypatch.setenv("BIG_BASELINE_TABLES", str(bad))
    log = []
    res = compare.load_results([str(outs["a"])])
    paths = compare.write_plots(res, tmp_path / "out", log=log.append)
    assert len(paths) == 6 and all(p.is_file() for p in paths)
    assert any("baseline tables could not be read" in line for line in log)
