"""Baseline tables: they load, use one naming scheme, agree with their sources and with themselves."""
from __future__ import annotations

import csv
import shutil
from collections import defaultdict

import numpy as np
import pytest

from big import baselines as B
from big import registry
from big.errors import ReferenceDataError
from conftest import REPO

TABLES = REPO / "baselines" / "tables"
SHARED_REF = REPO.parent / "shared" / "reference"
TIMM_NAMES = {"resnet18", "vit_base_patch16_224", "vgg16", "alexnet", "densenet121", "efficientnet_b4",
              "vit_base_patch16_clip_224", "eva02_base_patch16_clip_224", "vit_base_patch16_224.dino",
              "samvit_base_patch16"}


@pytest.fixture(autouse=True)
def _default_tables(monkeypatch):
    monkeypatch.delenv("BIG_BASELINE_TABLES", raising=False)


def test_tables_are_found_beside_the_package():
    assert B.default_tables_dir() == TABLES
    assert B.tables_dir() == TABLES
    assert (TABLES / "SOURCES.md").is_file()


def test_tables_load_with_one_naming_scheme():
    means, per = B.load_means(), B.load_per_dataset()
    assert len(means) == 136 and len(per) == 192
    for r in means + per:
        assert r["model"] in TIMM_NAMES, r
        assert r["training"] in B.TRAININGS
        assert r["resolution"] in registry.SIZES
        assert r["source"]
    assert {r["table"] for r in means} == set(B.MEAN_TABLES)
    # thesis tables: all three metrics; Doerrich: AUC only (never invented balacc/kappa)
    for r in means:
        if r["table"].startswith("thesis"):
            assert None not in (r["auc"], r["balacc"], r["kappa"])
        else:
            assert r["auc"] is not None and r["balacc"] is None and r["kappa"] is None
    assert all(r["balacc"] is None and r["kappa"] is None for r in per)
    assert {r["weighted"] for r in means if r["training"] == "mm-PT"} == {True, False}
    assert not any(r["weighted"] for r in means + per if r["training"] != "mm-PT")


def test_doerrich_per_dataset_auc_reproduces_the_published_averages():
    per = defaultdict(dict)
    for r in B.load_per_dataset():
        per[(r["model"], r["training"], r["resolution"])][r["dataset"]] = r["auc"]
    averages = {(r["model"], r["training"], r["resolution"]): r["auc"]
                for r in B.load_means() if r["table"] == "doerrich-average"}
    assert len(per) == 16  # resnet18 and vit_base_patch16_224 x end-to-end, linear probing x 4 sizes
    for key, vals in per.items():
        assert sorted(vals) == sorted(registry.flags()), key
        assert abs(np.mean(list(vals.values())) - averages[key]) < 0.01, key
    # and the thesis' re-evaluation of the same end-to-end checkpoints agrees with them too
    t6 = {(r["model"], r["resolution"]): r["auc"] for r in B.load_means() if r["table"] == "thesis-T6"}
    for (model, training, res), vals in per.items():
        if training == "end-to-end":
            assert abs(np.mean(list(vals.values())) - t6[(model, res)]) < 0.01


@pytest.mark.skipif(not (SHARED_REF / "thesis_tables.csv").is_file(), reason="shared reference material absent")
def test_every_number_equals_its_transcribed_source():
    rename = {"clip_vit_b16": "vit_base_patch16_clip_224", "eva02_vit_b16": "eva02_base_patch16_clip_224",
              "dino_vit_b16": "vit_base_patch16_224.dino", "sam_vit_b16": "samvit_base_patch16"}
    training = {"endToEnd": "end-to-end", "linearProbing": "linear-probing", "mm-PT": "mm-PT", "end-to-end": "end-to-end"}
    src = {}
    with open(SHARED_REF / "thesis_tables.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            key = ("thesis-" + r["table"], rename.get(r["model"], r["model"]), training[r["training"]],
                   r["weighted"] == "yes", int(r["resolution"]))
            src[key] = {c: r[c] for c in ("auc", "auc_std", "balacc", "balacc_std", "kappa", "kappa_std")}
    src_per = {}
    with open(SHARED_REF / "baseline_results.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["source"].startswith("mariusbachmeier"):
                continue  # website screenshots: not transcribed (see SOURCES.md)
            if r["dataset"] == "AVERAGE":
                src[("doerrich-average", r["model"], training[r["training"]], False, int(r["resolution"]))] = {
                    "auc": r["auc"], "balacc": r["balacc"], "kappa": r["kappa"]}
            else:
                src_per[(r["model"], training[r["training"]], int(r["resolution"]), r["dataset"])] = r
    means = B.load_means()
    assert {(r["table"], r["model"], r["training"], r["weighted"], r["resolution"]) for r in means} == set(src)
    for r in means:
        want = src[(r["table"], r["model"], r["training"], r["weighted"], r["resolution"])]
        for c, v in want.items():
            assert (r[c] is None) if v == "" else (r[c] == float(v)), (r, c)
    per = B.load_per_dataset()
    assert {(r["model"], r["training"], r["resolution"], r["dataset"]) for r in per} == set(src_per)
    for r in per:
        want = src_per[(r["model"], r["training"], r["resolution"], r["dataset"])]
        assert r["auc"] == float(want["auc"]) and r["source"].endswith(want["source"])


def test_baselines_for_gives_per_dataset_values_where_they_exist_and_means_otherwise():
    bs = B.baselines_for(64)
    by = {b.key: b for b in bs}
    e2e = by[("resnet18", "end-to-end", False)]
    auc = e2e.value("auc")
    assert isinstance(auc, dict) and sorted(auc) == sorted(registry.flags())
    assert auc["pathmnist"] == 0.9940
    assert e2e.value("balacc") == 0.7253 and e2e.value("kappa") == 0.6620  # thesis Table 6 means
    assert e2e.std["kappa"] == 0.0120
    mmpt = by[("vit_base_patch16_224", "mm-PT", True)]
    assert (mmpt.value("auc"), mmpt.value("balacc"), mmpt.value("kappa")) == (0.8878, 0.6385, 0.5531)
    assert mmpt.label == "vit_base_patch16_224 mm-PT weighted"
    lp = by[("vgg16", "linear-probing", False)]
    assert lp.value("auc") == 0.8955 and lp.value("balacc") is None
    # thesis tables are preferred over Doerrich's own average where both exist
    assert by[("efficientnet_b4", "end-to-end", False)].mean["auc"] == 0.9008
    only = B.baselines_for(224, only=B.DEFAULT_OVERLAY)
    assert [b.key for b in only] == list(B.DEFAULT_OVERLAY)
    ov = B.overlays(only)
    assert ov["auc"]["resnet18 mm-PT"] == 0.7776 and isinstance(ov["auc"]["resnet18 end-to-end"], dict)
    assert ov["kappa"]["vit_base_patch16_224 end-to-end"] == 0.7040
    assert "vgg16 linear-probing" not in B.overlay(B.baselines_for(224), "balacc")


def test_absent_tables_give_no_baselines(tmp_path, monkeypatch):
    monkeypatch.setenv("BIG_BASELINE_TABLES", str(tmp_path / "absent"))
    assert B.tables_dir() is None
    assert B.baselines_for(28) == [] and B.load_means() == [] and B.load_per_dataset() == []


@pytest.mark.parametrize("edit,where", [
    (lambda t: t.replace("thesis-T5,resnet18,mm-PT,no,28,0.7774", "thesis-T5,resnet18,mm-PT,no,28,0.77x4"), ("line 2", "column auc")),
    (lambda t: t.replace("thesis-T5,resnet18,mm-PT,no,64,", "thesis-T5,resnet18,mmPT,no,64,"), ("line 3", "column training")),
    (lambda t: t.replace("thesis-T5,resnet18,mm-PT,no,128,0.8388", "thesis-T5,resnet18,mm-PT,no,128,1.8388"), ("line 4", "column auc")),
    (lambda t: t.replace("table,model", "tabel,model"), ("line 1", "header is tabel")),
])
def test_a_malformed_table_names_file_row_and_column(tmp_path, edit, where):
    shutil.copytree(TABLES, tmp_path / "t")
    p = tmp_path / "t" / "means.csv"
    p.write_text(edit(p.read_text()))
    with pytest.raises(ReferenceDataError) as ei:
        B.baselines_for(28, folder=tmp_path / "t")
    text = "\n".join(ei.value.report())
    assert "means.csv" in text and all(w in text for w in where), text


def test_big_baselines_command(capsys):
    from big import cli

    assert cli.main(["baselines", "--resolution", "64", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "model,training,weighted,resolution,auc,balacc,kappa,tables"
    assert len(lines) == 1 + 24
    assert "resnet18,mm-PT,yes,64,0.8573,0.4571,0.3164,thesis-T5" in lines
    assert cli.main(["baselines", "--training", "end-to-end", "--model", "vgg16"]) == 0
    md = capsys.readouterr().out
    assert md.count("| vgg16 | end-to-end |") == 4 and "0.9530 ± 0.0022" in md
    assert cli.main(["baselines", "--model", "no_such_model"]) == 1
