"""The starting kit: the repo's starting_kit/ plus the package and baseline configs, no caches or data."""
from __future__ import annotations

from pathlib import Path

from big.codabench.kitfiles import assemble_starting_kit


def _fake_repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "starting_kit" / "sample_result_submission").mkdir(parents=True)
    (repo / "starting_kit" / "README.md").write_text("# kit\n")
    (repo / "starting_kit" / "sample_result_submission" / "breastmnist_28.csv").write_text("id,0,1\n")
    (repo / "starting_kit" / "sample_code_submission").mkdir()
    (repo / "starting_kit" / "sample_code_submission" / "weights.npz").write_bytes(b"PK")
    (repo / "starting_kit" / "__pycache__").mkdir()
    (repo / "starting_kit" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"0")
    (repo / "baselines" / "configs").mkdir(parents=True)
    (repo / "baselines" / "configs" / "mmpt_28.yaml").write_text("size: 28\n")
    (repo / "baselines" / "configs" / "weights.pth").write_bytes(b"0")
    (repo / "baselines" / "README.md").write_text("# baselines\n")
    (repo / "pyproject.toml").write_text("[project]\nname='x'\n")
    return repo


def test_starting_kit_contents(tmp_path):
    repo = _fake_repo(tmp_path)
    dest = assemble_starting_kit(tmp_path / "kit", repo=repo)
    names = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert "README.md" in names and "sample_result_submission/breastmnist_28.csv" in names
    assert "pyproject.toml" in names
    assert "baselines/configs/mmpt_28.yaml" in names and "baselines/README.md" in names
    assert "big/registry.json" in names and "big/cli.py" in names and "big/codabench/bundle.py" in names
    # the sample model's weights travel with the kit; caches never, weights in configs never
    assert "sample_code_submission/weights.npz" in names
    assert not any("__pycache__" in n or n.endswith((".pyc", ".pth")) for n in names)


def test_starting_kit_from_real_repo_installs_readme(tmp_path):
    dest = assemble_starting_kit(tmp_path / "kit")
    assert (dest / "big" / "registry.json").is_file()
    # pyproject.toml names README.md: the kit always has one so `pip install -e .` works
    assert (dest / "README.md").is_file() and (dest / "pyproject.toml").is_file()
