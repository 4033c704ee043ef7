"""Write a valid BIG result submission (zip of the 12 {flag}_{size}.csv files) from any callable.

    # a code submission's model.py (its Model().resolution gives the size)
    python make_result_submission.py --model sample_code_submission/model.py \
        --data-root ~/.medmnist --split test --out result.zip

    # any function predict(dataset, images) -> (B, C) scores, given as module:function
    python make_result_submission.py --callable my_project.infer:predict --size 64 \
        --data-root ~/.medmnist --split test --out result.zip

    # from Python
    from make_result_submission import write_result_submission
    write_result_submission(my_predict, size=28, data_root="~/.medmnist", split="test", out="result.zip")

``images`` are uint8 batches exactly as stored in the medmnist npz files ((B, S, S) grey or
(B, S, S, 3) RGB); the result must be (B, C) scores in [0, 1] (C = 2 for binary datasets, 14
for ChestMNIST, else the number of classes). Each batch is checked exactly as the ingestion
program checks code submissions, and the zip is validated before the script says OK. The images
are streamed from the npz files batch by batch, so even the 224 px files need little memory.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Callable, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the big package: beside this file in the kit, one up in the repo

from big import registry  # noqa: E402
from big.errors import BigError, SubmissionError  # noqa: E402
from big.ingestion import load_model, ModelFailure, predict_local  # noqa: E402
from big.submission import read_submission, write_submission  # noqa: E402


def write_result_submission(predict: Callable[[str, np.ndarray], np.ndarray], *, size: int, data_root,
                            split: str, out, batch_size: int = 256, log: Optional[Callable[[str], None]] = print) -> Path:
    """Run ``predict`` over the ``split`` images of all 12 datasets at ``size`` px; write and validate ``out``."""
    if int(size) not in registry.SIZES:
        raise SubmissionError([f"size {size} is not a MedMNIST+ size ({', '.join(map(str, registry.SIZES))})"])
    root = Path(os.path.expanduser(str(data_root)))
    preds = predict_local(predict, int(size), root, split, batch_size=batch_size, log=log)
    path = write_submission(out, preds, int(size))
    read_submission(path, split=split, expected_n={f: a.shape[0] for f, a in preds.items()})
    official = {f: registry.get(f).n_samples[split] for f in registry.flags()}
    differ = [f"{f} ({a.shape[0]} rows, the official split has {official[f]})" for f, a in preds.items()
              if a.shape[0] != official[f]]
    if differ and log:
        log("note: these files do not cover the official split (synthetic or partial data?): " + ", ".join(differ)
            + f". The platform would reject this zip; check it against the files you used with "
              f"`big validate {path} --split {split} --data-root {data_root}`")
    return path


def validate_command(out, split: str, data_root) -> str:
    """The `big validate` command that checks ``out`` as this script did: against the official split sizes
    when the files have them, else against the files used (synthetic or partial data)."""
    root = Path(os.path.expanduser(str(data_root)))
    official = True
    for ds in registry.datasets():
        sizes = [s for s in registry.SIZES if (root / ds.file_name(s)).is_file()]
        if not sizes:
            continue
        import zipfile

        from big.data import read_npy_header

        with zipfile.ZipFile(root / ds.file_name(sizes[0])) as zf, zf.open(f"{split}_labels.npy") as fh:
            official &= int(read_npy_header(fh)[0][0]) == ds.n_samples[split]
    return f"big validate {out} --split {split}" + ("" if official else f" --data-root {data_root}")


def _resolve_callable(spec: str):
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise SubmissionError([f"--callable must look like module:function, found {spec!r}"])
    sys.path.insert(0, os.getcwd())
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, type):  # a Model-like class: use an instance's predict
        inst = obj()
        return inst.predict, getattr(inst, "resolution", None), getattr(inst, "batch_size", None)
    return obj, None, None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a code submission's model.py (class Model with resolution and predict)")
    src.add_argument("--callable", help="module:function taking (dataset, images) and returning (B, C) scores")
    ap.add_argument("--size", type=int, choices=registry.SIZES, help="image size (default: the model's resolution)")
    ap.add_argument("--data-root", required=True, help="folder with the MedMNIST+ npz files")
    ap.add_argument("--split", default="test", choices=["val", "test"])
    ap.add_argument("--out", required=True, help="zip to write")
    ap.add_argument("--batch-size", type=int, help="images per call (default: the model's batch_size or 256)")
    args = ap.parse_args(argv)
    try:
        if args.model:
            try:
                model = load_model(args.model)
            except ModelFailure as exc:
                raise SubmissionError([exc.summary + ("\n" + exc.details if exc.details else "")],
                                      summary=exc.summary) from None
            predict, resolution, batch = model.predict, model.resolution, getattr(model, "batch_size", None)
        else:
            predict, resolution, batch = _resolve_callable(args.callable)
        size = args.size or resolution
        if size is None:
            raise SubmissionError(["give --size (the callable has no resolution attribute)"])
        out = write_result_submission(predict, size=int(size), data_root=args.data_root, split=args.split,
                                      out=args.out, batch_size=args.batch_size or batch or 256)
    except BigError as exc:
        for line in exc.report():
            print(line, file=sys.stderr)
        print(f"error: {exc.summary}", file=sys.stderr)
        return 1
    print(f"OK: {out} is a valid {args.split} result submission at {size} px for the files in {args.data_root}; "
          f"check it again with `{validate_command(out, args.split, args.data_root)}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
