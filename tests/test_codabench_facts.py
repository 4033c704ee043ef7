"""One source of truth (issue 11): every shared fact of a bundle built with non-default options is the
same in the bundle's configuration (competition.yaml, the programs' config.yaml, the input images),
in every page, in the starting kit's README and in its facts.json; no page states such a fact by hand."""
from __future__ import annotations

import json
import re
import zipfile

import pytest

from big import imageenv
from big.codabench import bundle as B
from big.codabench import facts as F
from big.errors import UsageError

from conftest import REPO

QUEUE = "12345678-1234-1234-1234-123456789abc"
WORKER = "1x NVIDIA L4 24 GB, 8 CPU cores, 32 GB memory"


@pytest.fixture(scope="module")
def odd_bundle(tmp_path_factory):
    """Non-default everything: resolutions, input sizes, B, dates, own queue with a described worker
    without network, the docker/ image."""
    from big import data

    tmp = tmp_path_factory.mktemp("facts")
    data.synthesize(tmp / "d", sizes=(28, 64), n_per_split="train=20,val=12,test=12", seed=2)
    res = B.build_bundle(B.BundleOptions(
        data_root=tmp / "d", out=tmp / "b.zip", allow_synthetic=True, resolutions=[28, 64, 128], input_sizes=[64],
        organizer="Facts", contact_email="f@example.org", n_boot=123, start="2028-03-04 05:06:07", queue=QUEUE,
        worker=WORKER, worker_network="disabled", docker_image="me/big-medmnist:gpu310", keep_folder=tmp / "folder"),
        log=lambda m: None)
    return res


def test_facts_read_back_from_the_bundle_equal_the_options(odd_bundle):
    f = F.from_bundle(odd_bundle.folder)
    assert f == odd_bundle.facts
    assert (f.resolutions, f.input_sizes, f.n_boot, f.queue, f.cap_s) == ([28, 64, 128], [64], 123, QUEUE, None)
    assert f.worker == WORKER and f.network == "disabled" and f.synthetic
    assert f.phases[0].start == "2028-03-04 05:06:07" and f.phases[1].end is None
    assert f.image.name == "big-gpu310" and f.has_package("timm") and f.has_package("torchvision")
    assert f.ranking_title == "Mean AUC" and f.submission_rule == "Add_And_Delete_Multiple"
    kit = F.load(odd_bundle.folder / "starting_kit" / F.FACTS_FILE)
    assert kit == f


def test_every_place_shows_the_bundles_facts(odd_bundle):
    root = odd_bundle.folder
    f = F.from_bundle(root)
    blocks = F.render_blocks(f, phases_doc=B.load_yaml(root / "competition.yaml")["phases"])
    places = sorted((root / "pages").glob("*.md")) + [root / "starting_kit" / "README.md"]
    seen = set()
    for path in places:
        text = path.read_text(encoding="utf-8")
        for m in B.BLOCK_RE.finditer(text):
            seen.add(m.group("name"))
            assert m.group("body") == blocks[m.group("name")], f"{path.relative_to(root)}: block {m.group('name')}"
    assert seen >= {"stamp", "environment", "limits", "phases", "ranking", "bootstrap", "rules", "faq", "tracks"}
    kit = (root / "starting_kit" / "README.md").read_text(encoding="utf-8")
    sub = (root / "pages" / "submission.md").read_text(encoding="utf-8")
    for text in (kit, sub):
        assert WORKER in text and "**none**: the organizers' worker runs the containers without network" in text
        assert "**64 px**" in text and "28, 64 and 128 px" in text
        assert "2028-03-04 05:06:07 UTC" in (root / "pages" / "overview.md").read_text()
        assert "timm 1.0.31" in text and "torchvision 0.18.1" in text
    assert "**B = 123**" in kit and "**B = 123**" in (root / "pages" / "evaluation.md").read_text()
    # the scoring program uses what the pages say
    assert B.load_yaml(root / "scoring_program" / "config.yaml")["n_boot"] == 123
    assert B.load_yaml(root / "ingestion_program" / "config.yaml")["time_budget_s"] == f.budget_s


def test_a_changed_fact_is_drift(odd_bundle, tmp_path):
    """Editing one place by hand (or building the scorer with another B) is caught."""
    import shutil

    root = tmp_path / "b"
    shutil.copytree(odd_bundle.folder, root)
    cfg = root / "scoring_program" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("n_boot: 123", "n_boot: 200"))
    f = F.from_bundle(root)
    blocks = F.render_blocks(f, phases_doc=B.load_yaml(root / "competition.yaml")["phases"])
    text = (root / "pages" / "evaluation.md").read_text(encoding="utf-8")
    assert B.fill_blocks(text, blocks) != text


# page text outside generated blocks must not state these facts by hand
HAND_FACT_PATTERNS = {
    "bootstrap B": re.compile(r"\bB\s*=\s*\d"),
    "a time limit or budget": re.compile(r"\b\d{2,4}\s*s\b"),
    "package versions": re.compile(r"\b(torch|numpy|timm|torchvision|Python)\s+\d"),
    "a date": re.compile(r"\b20\d\d-\d\d-\d\d\b"),
    "submission limits": re.compile(r"\b\d+\s+submissions per day|\bper day\b"),
    "network policy": re.compile(r"\bno network\b|network access is not disabled", re.I),
}


@pytest.mark.parametrize("path", sorted((REPO / "pages").glob("*.md")) + [REPO / "starting_kit" / "README.md"],
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_hand_written_shared_fact_outside_generated_blocks(path):
    text = B.BLOCK_RE.sub("", path.read_text(encoding="utf-8"))
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # commands and code are examples, not statements
    found = {what: m.group(0) for what, rx in HAND_FACT_PATTERNS.items() for m in [rx.search(text)] if m}
    assert not found, f"{path.name} states {found} by hand: generate it (big.codabench.facts)"


def test_committed_places_are_generated_from_the_template():
    assert B.template_drift() == []
    kit = (REPO / "starting_kit" / "README.md").read_text(encoding="utf-8")
    f = B.template_facts()
    assert f.n_boot == B.load_yaml(REPO / "scoring_program" / "config.yaml")["n_boot"]
    assert F.bootstrap_text(f) in kit and F.environment_text(f) in kit and F.TRAINING_RULE in kit
    for page in ("overview", "data", "submission", "terms"):
        assert F.TRAINING_RULE in (REPO / "pages" / f"{page}.md").read_text(encoding="utf-8"), page


def test_image_table_is_the_one_source_of_the_package_lists():
    gpu = imageenv.contents(imageenv.IMAGES["gpu310"])
    assert gpu == ["Python 3.10", "CUDA 12.4.1 runtime", "numpy 1.26.4", "scipy", "scikit-learn", "pandas",
                   "matplotlib 3.9.0", "PyYAML 6.0.1", "torch 2.3.1", "tensorflow", "no torchvision", "no timm"]
    big = imageenv.contents(imageenv.IMAGES["big-gpu310"])
    assert "timm 1.0.31" in big and "torchvision 0.18.1" in big and not any(p.startswith("no ") for p in big)
    f = B.template_facts()
    assert ", ".join(p for p in gpu if not p.startswith("no ")) in F.environment_text(f)


def test_network_and_worker_options_are_checked(tmp_path):
    with pytest.raises(UsageError, match="needs --queue"):
        B._check_options(B.BundleOptions(data_root=tmp_path, out=tmp_path / "b.zip", worker_network="disabled"))
    with pytest.raises(UsageError, match="one line"):
        B._check_options(B.BundleOptions(data_root=tmp_path, out=tmp_path / "b.zip", worker="a\nb"))


def test_bundle_json_of_kit_matches_zip(odd_bundle):
    with zipfile.ZipFile(odd_bundle.zip_path) as zf:
        assert json.loads(zf.read("starting_kit/facts.json")) == json.loads(odd_bundle.facts.to_json())
