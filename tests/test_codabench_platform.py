"""Platform truth, unit by unit: CodaBench's date parsing, its time limits and the image table.

The end-to-end checks (bundle, lint, run-local) are in test_codabench_{bundle,lint,worker}.py.
"""
from __future__ import annotations

import datetime as dt
import re

import pytest
import yaml

from big import imageenv, limits
from big.codabench import bundle as B
from big.codabench import dates
from big.errors import UsageError
from big.ingestion.config import IngestionConfig, load_config
from conftest import REPO

# ---------------------------------------------------------------------------------------------
# dates as CodaBench's get_datetime stores them (codabench.md §1.5)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("written, stored", [
    (dt.datetime(2027, 5, 31, 23, 59, 59), dt.datetime(2027, 5, 31)),  # unquoted date-time: cut to midnight
    (dt.date(2027, 6, 1), dt.datetime(2027, 6, 1)),
    ("2027-05-31 23:59:59", dt.datetime(2027, 5, 31, 23, 59, 59)),  # quoted: dateutil keeps the time
    ("12-31-2026", dt.datetime(2026, 12, 31)),
    ("1-2-2026", dt.datetime(2026, 1, 2)),  # month first
    ("2026-12-01T13:00:00+02:00", dt.datetime(2026, 12, 1, 13)),  # offset replaced by UTC, not converted
])
def test_codabench_datetime(written, stored):
    assert dates.codabench_datetime(written) == stored


def test_yaml_round_trip_of_what_bundle_writes():
    """What `big bundle` writes is a quoted string that CodaBench reads back to the second."""
    text = yaml.safe_dump({"end": dates.format_utc(dt.datetime(2027, 6, 1, 11, 59, 59))})
    assert text.strip() == "end: '2027-06-01 11:59:59'"
    assert dates.codabench_datetime(yaml.safe_load(text)["end"]) == dt.datetime(2027, 6, 1, 11, 59, 59)
    # ... while the same value unquoted is cut to midnight
    unquoted = yaml.safe_load(text.replace("'", ""))["end"]
    assert isinstance(unquoted, dt.datetime) and dates.codabench_datetime(unquoted) == dt.datetime(2027, 6, 1)


def test_unreadable_dates():
    for bad in (20261201, "tomorrow-ish", None):
        with pytest.raises(dates.DateError):
            dates.codabench_datetime(bad)


def test_intended_datetime():
    assert dates.intended_datetime(dt.datetime(2027, 5, 31, 23, 59, 59))[0] == dt.datetime(2027, 5, 31, 23, 59, 59)
    aware = dt.datetime(2026, 12, 1, 13, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert dates.intended_datetime(aware)[0] == dt.datetime(2026, 12, 1, 11)
    assert dates.intended_datetime("2026-12-01T13:00:00+02:00")[0] == dt.datetime(2026, 12, 1, 11)


# ---------------------------------------------------------------------------------------------
# limits: effective = min(cap, execution_time_limit); budget = effective - max(120 s, 10 %)
# ---------------------------------------------------------------------------------------------

def test_effective_limit_and_budget():
    assert limits.effective_limit(1200, 600) == 600 and limits.effective_limit(300, 600) == 300
    assert limits.effective_limit(1200, None) == 1200  # own queue: no cap
    assert limits.effective_limit(None, 600) == 600  # CodaBench's default phase limit
    assert [limits.time_budget(x) for x in (600, 1200, 3600)] == [480, 1080, 3240]
    assert limits.default_cap(None) == 600 and limits.default_cap("some-vhost") is None
    assert limits.min_limit(15) == 136 and limits.time_budget(136) > 15 >= limits.time_budget(135)


def test_phase_limits():
    phases = [{"name": "Dev", "execution_time_limit": 1200}, {"name": "Test", "execution_time_limit": 900},
              {"name": "Bad", "execution_time_limit": "long"}]
    lim = limits.phase_limits(phases, 600)
    assert [(p.name, p.asked, p.effective, p.capped) for p in lim.phases] == [
        ("Dev", 1200, 600, True), ("Test", 900, 600, True)]
    assert lim.effective == 600 and lim.budget == 480 and "600 s" in lim.budget_comment()
    own = limits.phase_limits(phases, None)
    assert own.effective == 900 and own.budget == 780 and "own queue" in own.budget_comment()


def test_default_queue_budget_below_600_everywhere():
    """The committed template, ingestion config, ingestion defaults and pages agree: 600 s, 480 s."""
    doc = yaml.safe_load((REPO / "competition.yaml").read_text())
    lim = limits.phase_limits(doc["phases"], limits.DEFAULT_QUEUE_CAP_S)
    assert [p["execution_time_limit"] for p in doc["phases"]] == [600, 600]
    assert lim.effective == 600 and lim.budget == 480 < 600
    cfg = load_config(REPO / "ingestion_program" / "config.yaml")
    assert cfg.time_budget_s == lim.budget and cfg.platform_cap_s == limits.DEFAULT_QUEUE_CAP_S
    assert IngestionConfig().time_budget_s == lim.budget
    page = (REPO / "pages" / "submission.md").read_text()
    block = re.search(r"<!-- BEGIN big:limits -->(.*?)<!-- END big:limits -->", page, re.S).group(1)
    assert "may run **600 s**" in block and "after **480 s**" in block and "below the platform's 600 s limit" in block
    assert "Rebuild the bundle after changing the queue or a limit" in block


def test_template_dates_are_quoted_and_kept():
    text = (REPO / "competition.yaml").read_text()
    lines = re.findall(r"^\s+(start|end):\s*(.+)$", text, re.M)
    assert lines and all(re.fullmatch(r"'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d'", v.split("#")[0].strip()) for _, v in lines)
    for ph in yaml.safe_load(text)["phases"]:
        for key in ("start", "end"):
            if key in ph:
                assert dates.codabench_datetime(ph[key]) == dates.parse_utc(ph[key])


def test_limits_block_with_a_cap_and_with_an_own_queue():
    phases = [{"name": "Dev", "execution_time_limit": 1200, "max_submissions_per_day": 5, "max_submissions": 50}]
    capped = B.limits_text(phases, cap=600)
    assert "may run **600 s** (the phase asks for 1200 s; the shared queue stops every job at 600 s)" in capped
    assert "after **480 s**" in capped
    own = B.limits_text(phases, queue="12345678-1234-1234-1234-123456789abc", cap=None)
    assert "may run **1200 s**." in own and "own compute queue" in own and "after **1080 s**" in own
    results = B.limits_text(phases, tracks=["results"], cap=600)
    assert "ingestion" not in results


# ---------------------------------------------------------------------------------------------
# the image table and resolver (building venvs is `make venvs`; here only what needs no download)
# ---------------------------------------------------------------------------------------------

def test_image_lookup_by_name_and_reference():
    assert imageenv.lookup("gpu310").python == "3.10.13"
    assert imageenv.lookup("codalab/codalab-legacy:py312").name == "py312"
    assert imageenv.lookup("someone/big-medmnist:gpu310").name == "big-gpu310"
    assert imageenv.lookup(B.IMAGE_CODE).name == "gpu310" and imageenv.lookup(B.IMAGE_RESULTS).name == "py312"
    with pytest.raises(UsageError, match="known are"):
        imageenv.lookup("codalab/codalab-legacy:py37")
    pins = imageenv.all_pins(imageenv.IMAGES["big-gpu310"])
    assert "torch==2.3.1" in pins and "timm==1.0.31" in pins and "torchvision==0.18.1" in pins


def test_docker_constraints_file_is_the_table():
    """docker/constraints.txt (the Dockerfile's pins) equals the big-gpu310 entry of the table."""
    text = (REPO / "docker" / "constraints.txt").read_text()
    lines = [l.split("#")[0].strip() for l in text.splitlines()]
    assert [l for l in lines if l] == list(imageenv.IMAGES["big-gpu310"].constraints)
    base = {imageenv.requirement_name(p): p for p in imageenv.IMAGES["gpu310"].pins}
    for req in imageenv.IMAGES["big-gpu310"].constraints:  # the base image's pins are kept, never replaced
        name = imageenv.requirement_name(req)
        if name in base and imageenv.pinned_version(base[name]):
            assert req == base[name]
    assert "FROM codalab/codalab-legacy:gpu310" in (REPO / "docker" / "Dockerfile").read_text()


def test_makefile_builds_every_image_through_the_resolver():
    text = (REPO / "Makefile").read_text()
    for name in imageenv.names():
        assert re.search(rf"big image-env {re.escape(name)}\s*$", text, re.M), name
    assert not re.search(r"pip install.*(numpy|torch)==", text.split("venvs:")[1]), "pins belong in big/imageenv.py"


def test_missing_python_version_is_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError) as exc:
        imageenv.find_python(imageenv.IMAGES["gpu310"])
    assert "pyenv install 3.10.13" in str(exc.value.problems[0])


def test_pyenv_python_found(tmp_path, monkeypatch):
    root = tmp_path / "pyenv"
    (root / "versions" / "3.12.1" / "bin").mkdir(parents=True)
    (root / "versions" / "3.12.1" / "bin" / "python").write_text("")
    monkeypatch.setenv("PYENV_ROOT", str(root))
    assert imageenv.find_python(imageenv.IMAGES["py312"]) == root / "versions" / "3.12.1" / "bin" / "python"


def test_pin_mismatches():
    pins = ("numpy==1.26.4", "scipy", "torch==2.3.1")
    assert imageenv._mismatches(pins, {"numpy": "1.26.4", "scipy": "1.15.3", "torch": "2.3.1+cu121"}) == []
    assert imageenv._mismatches(pins, {"numpy": "2.1.0", "scipy": None, "torch": "2.3.1"}) == [
        "numpy==1.26.4 (found 2.1.0)", "scipy (missing)"]


def test_not_a_venv_is_refused(tmp_path, capsys):
    from big import cli

    (tmp_path / "stuff.txt").write_text("x")
    assert cli.main(["image-env", "gpu310", "--venv", str(tmp_path), "--check"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["image-env", "gpu310", "--venv", str(tmp_path)]) == 1  # never builds into a foreign folder
    assert "not a virtualenv" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stuff.txt"]
