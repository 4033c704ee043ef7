"""starting_kit/README.ipynb: committed without outputs, and executed headless (nbclient) in an
assembled starting kit on synthetic files given through MEDMNIST_ROOT."""
from __future__ import annotations

import json
import os
import time

import pytest

from big import data
from big.codabench.kitfiles import assemble_starting_kit
from big.codabench.kit import mark_synthetic

from conftest import REPO

NOTEBOOK = REPO / "starting_kit" / "README.ipynb"


def test_notebook_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    text = "".join("".join(c["source"]) for c in nb["cells"])
    for topic in ("medmnist", "MEDMNIST_ROOT", "write_result_submission", "read_submission", "package(", "run_kit"):
        assert topic in text, topic


@pytest.mark.slow
def test_notebook_executes_on_synthetic_data(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="make test installs the dev extras (nbformat, nbclient)")
    nbclient = pytest.importorskip("nbclient", reason="make test installs the dev extras (nbformat, nbclient)")
    pytest.importorskip("ipykernel", reason="make test installs the dev extras (ipykernel)")
    kit = assemble_starting_kit(tmp_path / "kit")
    synth = tmp_path / "synth"
    data.synthesize(synth, sizes=(28,), n_per_split="train=120,val=40,test=40", seed=5)
    mark_synthetic(synth)
    nb = nbformat.read(str(kit / "README.ipynb"), as_version=4)
    old = os.environ.get("MEDMNIST_ROOT")
    os.environ["MEDMNIST_ROOT"] = str(synth)  # the kernel inherits it
    t0 = time.perf_counter()
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(kit)}}).execute()
    finally:
        if old is None:
            os.environ.pop("MEDMNIST_ROOT", None)
        else:
            os.environ["MEDMNIST_ROOT"] = old
    print(f"notebook executed in {time.perf_counter() - t0:.1f} s")
    out = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert f"data: {synth}" in out
    assert "result: Finished" in out and "code: Finished" in out and "Mean AUC" in out
    assert (kit / "notebook_output" / "result_val.zip").is_file()
    assert (kit / "notebook_output" / "run_code" / "run" / "scoring" / "output" / "scores.json").is_file()
