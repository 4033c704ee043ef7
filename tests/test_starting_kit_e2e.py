"""Done-when of issue 11: the starting kit of a freshly built bundle, extracted into an empty folder and
installed into a fresh virtualenv (offline, from `make test`'s wheelhouse, with the oldest setuptools
the kit's pyproject allows), runs its README's bash commands in order on synthetic data, using the
kit's own package, and ends with scored Development-phase runs of a result and a code submission.

Network steps are marked `# network` in the README and skipped: `pip install` (the kit is installed
from the wheelhouse first), medmnist downloads (the data folder is the README's own `big synth`
folder) and `big image-env` (the gpu310 image venv of `make test` is linked into the kit). Any other
attempt to reach the network fails at once: the proxies point at a closed local port.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from big.codabench import bundle as B
from big.codabench import kitfiles as K

from conftest import REPO, image_python

WHEELHOUSE = REPO / ".wheelhouse"
NETWORK_MARK = re.compile(r"#\s*network\b")


def readme_commands(text: str):
    """(commands run, commands skipped as network) from the README's ```bash blocks, in order;
    backslash-continued lines joined."""
    run, skipped = [], []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            if not line.strip() or line.strip().startswith("#"):
                continue
            (skipped if NETWORK_MARK.search(line) else run).append(line.strip())
    return run, skipped


def test_readme_marks_every_network_step():
    run, skipped = readme_commands((REPO / "starting_kit" / "README.md").read_text(encoding="utf-8"))
    assert any(c.startswith("pip install") for c in skipped) and any("medmnist download" in c for c in skipped)
    assert not any(c.startswith(("pip ", "python -m medmnist")) or "image-env" in c for c in run), run
    # the flow ends with the Development phase of a result and a code submission
    kit_runs = [c for c in run if c.startswith("big run-local --kit")]
    assert any("result_val.zip" in c for c in kit_runs) and any("sample_code_submission.zip" in c for c in kit_runs)


def _wheelhouse() -> dict:
    stamp = WHEELHOUSE / "wheelhouse.json"
    if not stamp.is_file():
        msg = f"{stamp} is missing: `make test` prepares it (make wheelhouse)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return json.loads(stamp.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def kit_from_bundle(tmp_path_factory):
    """The starting kit of a bundle built with non-default options, extracted into an empty folder."""
    from big import data

    tmp = tmp_path_factory.mktemp("kit_e2e")
    synth = tmp / "organizer_data"
    data.synthesize(synth, sizes=(28,), n_per_split="train=40,val=16,test=16", seed=11)
    res = B.build_bundle(B.BundleOptions(
        data_root=synth, out=tmp / "bundle.zip", allow_synthetic=True, resolutions=[28, 64], input_sizes=[28],
        organizer="Kit test", contact_email="kit@example.org", n_boot=20, start="2027-02-01 12:00:00"),
        log=lambda m: None)
    kit = tmp / "kit"
    kit.mkdir()
    with zipfile.ZipFile(res.zip_path) as zf:
        for name in zf.namelist():
            if name.startswith("starting_kit/") and not name.endswith("/"):
                target = kit / name[len("starting_kit/"):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))
    return kit, res


@pytest.mark.slow
def test_starting_kit_readme_end_to_end(kit_from_bundle, tmp_path):
    wh = _wheelhouse()
    kit, res = kit_from_bundle
    gpu310 = image_python("gpu310").parents[1]
    timings = {}
    t0 = time.perf_counter()
    # the oldest setuptools the kit's pyproject allows is the only one in the wheelhouse
    requires = re.search(r'requires = \["setuptools>=([0-9.]+)"\]', (kit / "pyproject.toml").read_text()).group(1)
    assert wh["setuptools"] == requires
    assert sorted(p.name.split("-")[1] for p in WHEELHOUSE.glob("setuptools-*.whl")) == [requires]

    base = getattr(sys, "_base_executable", sys.executable)
    venv = tmp_path / "venv"
    subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "BIG_"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), PYTHONNOUSERSITE="1",
               MEDMNIST_ROOT=str(kit / "synth"), MPLCONFIGDIR=str(tmp_path / "mpl"), HOME=str(tmp_path / "home"),
               PIP_NO_INDEX="1", PIP_FIND_LINKS=str(WHEELHOUSE), http_proxy="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    (tmp_path / "home").mkdir()
    inst = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--find-links",
                           str(WHEELHOUSE), "-e", str(kit)], capture_output=True, text=True, env=env, cwd=kit,
                          timeout=900)
    assert inst.returncode == 0, inst.stdout[-3000:] + inst.stderr[-3000:]
    timings["venv + offline install"] = time.perf_counter() - t0
    who = subprocess.run([str(venv / "bin" / "python"), "-c", "import big, shutil; print(big.__file__); "
                          "print(shutil.which('big'))"], capture_output=True, text=True, env=env, cwd=tmp_path)
    big_file, big_cmd = who.stdout.split()
    assert Path(big_file).resolve().is_relative_to(kit.resolve()), who.stdout  # the kit's own package
    assert Path(big_cmd).resolve().is_relative_to(venv.resolve())
    os.symlink(gpu310, kit / ".venv-gpu310")  # what `big image-env auto  # network` would have made

    run, skipped = readme_commands((kit / "README.md").read_text(encoding="utf-8"))
    script = "set -euo pipefail\n" + "".join(f"echo '+ {c}'\n{c}\n" for c in run)
    t1 = time.perf_counter()
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=kit, timeout=1500)
    timings["README commands"] = time.perf_counter() - t1
    out = proc.stdout + proc.stderr
    print(f"timings: {', '.join(f'{k} {v:.1f} s' for k, v in timings.items())}; skipped (network): {skipped}")
    assert proc.returncode == 0, out[-6000:]
    assert "OK: result_val.zip is a valid val submission" in out and "row counts from the files in" in out
    assert "OK: result_test.zip is a valid test submission" in out
    assert json.loads((kit / "scores_val" / "scores.json").read_text())["resolution"] == 28
    assert out.count("status: Finished") == 3, out[-6000:]
    assert "image gpu310 (codalab/codalab-legacy:gpu310)" in out  # the last run: the image's Python and pins
    assert "resnet18" in out  # `big baselines` inside the kit
    assert "nothing is posted automatically (Add_And_Delete_Multiple)" in out
    # the kit's scoring config is the bundle's (B = 20), so its local runs use it
    assert "n_boot: 20" in (kit / "scoring_program" / "config.yaml").read_text()


def test_kit_markdown_links_resolve(kit_from_bundle):
    kit, _ = kit_from_bundle
    mds = sorted(kit.rglob("*.md"))
    assert kit / "README.md" in mds and kit / "baselines" / "README.md" in mds
    for md in mds:
        for target in K.relative_links(md.read_text(encoding="utf-8")):
            assert (md.parent / target).exists(), f"{md.relative_to(kit)}: link {target} does not resolve in the kit"
    base = (kit / "baselines" / "README.md").read_text(encoding="utf-8")
    for name in re.findall(r"`([\w./-]+/[\w./-]+)`", base):
        if (REPO / name).exists() and not ((kit / "baselines" / name).exists() or (kit / name).exists()):
            assert f"`{name}`{K.OUTSIDE_NOTE}" in base, name  # a repository file the kit lacks says so
    assert (kit / "baselines" / "tables" / "means.csv").is_file()


def test_kit_programs_are_thin_and_carry_the_bundles_config(kit_from_bundle):
    kit, res = kit_from_bundle
    with zipfile.ZipFile(res.zip_path) as zf:
        for prog in K.KIT_PROGRAMS:
            names = sorted(p.name for p in (kit / prog).iterdir())
            assert "big" not in names and "metadata.yaml" in names and "config.yaml" in names
            assert (kit / prog / "config.yaml").read_bytes() == zf.read(f"{prog}/config.yaml")
        comp = zf.read("competition.yaml").decode()
    assert (kit / "competition.yaml").read_text().endswith(comp)
