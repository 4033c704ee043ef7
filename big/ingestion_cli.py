"""`big` verbs of the code-submission area: ingest, input-data, sample-submission, result-zip.

Handlers import their modules lazily, so `big --help` and `big score` stay fast.
"""
from __future__ import annotations

import time
from pathlib import Path
from .cli import sizes_arg


def _ingest(args) -> int:
    argv = [args.input_data, args.output, args.program]
    if args.data_dir is not None:
        argv += ["--data-dir", args.data_dir]
    if args.time_budget is not None:
        argv += ["--time-budget", str(args.time_budget)]
    root = Path(__file__).resolve().parent.parent
    config = args.config or str(root / "ingestion_program" / "config.yaml")
    if args.image:
        return _ingest_in_image(args, argv, config, root)
    if args.venv:
        from .errors import UsageError

        raise UsageError(["--venv needs --image (the image whose venv it is)"])
    from . import ingestion

    return ingestion.main(argv, config_path=config, t0=time.monotonic())


def _ingest_in_image(args, argv, config: str, root: Path) -> int:
    """The whole ingestion program run by the image venv's Python (the project not installed there):
    ingestion_program/ingest.py beside the package, as the bundle ships it."""
    import subprocess

    from . import imageenv

    env = imageenv.ensure(args.image, args.venv, log=print)
    print(f"ingestion program runs with image {env.image.name} ({env.image.ref}): {env.python} — {env.describe()}",
          flush=True)
    script = root / "ingestion_program" / "ingest.py"
    if script.is_file():
        cmd = [str(env.python), str(script)]
    else:  # an unpacked starting kit: the package alone
        cmd = [str(env.python), "-c", f"import sys, time; sys.path.insert(0, {str(root)!r}); from big import ingestion; "
                                      "sys.exit(ingestion.main(sys.argv[1:], t0=time.monotonic()))"]
    return subprocess.call(cmd + [*argv, "--config", config], env=env.environ())


def _input_data(args) -> int:
    from . import inputdata

    if args.verify:
        counts = inputdata.verify_input_data(args.out, progress=print)
        print(f"OK: {len(counts)} image file(s) in {args.out} match their manifest")
        return 0
    if not args.data_root or not args.split:
        from .errors import UsageError

        raise UsageError(["give --data-root and --split (or --verify to check an existing folder)"])
    out = inputdata.write_input_data(args.data_root, args.split, args.sizes, args.out,
                                     allow_synthetic=args.allow_synthetic, progress=print)
    manifest = inputdata.read_manifest(out)
    stamp = " (SYNTHETIC)" if manifest["synthetic"] else ""
    total = sum(e["n"] for e in manifest["files"].values())
    print(f"images-only input data for the {args.split} split{stamp} in {out}: {len(manifest['files'])} files, "
          f"sizes {', '.join(map(str, manifest['sizes']))}, {total:,} images")
    return 0


def _kit_script(name: str) -> Path:
    root = Path(__file__).resolve().parent.parent
    for folder in (root / "starting_kit", root):  # the repository, or an unpacked starting kit
        if (folder / name).is_file():
            return folder / name
    from .errors import UsageError

    raise UsageError([f"{name} not found beside the big package ({root}/starting_kit or {root})"])


def _sample_submission(args) -> int:
    import importlib.util

    script = _kit_script("train_sample_model.py")
    spec = importlib.util.spec_from_file_location("train_sample_model", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    weights = Path(args.weights) if args.weights else Path(args.out).with_suffix(".weights.npz")
    try:
        mod.train(args.data_root, args.size, weights, max_train=args.max_train or None, epochs=args.epochs,
                  seed=args.seed)
    except (FileNotFoundError, ValueError) as exc:
        from .errors import UsageError

        raise UsageError([str(exc)]) from None
    out = mod.package(args.out, weights)
    print(f"sample code submission (resolution {args.size}): {out} (model.py + weights.npz); weights also in {weights}")
    return 0


def _result_zip(args) -> int:
    from .ingestion import result_zip_from_model

    out = result_zip_from_model(args.model, args.data_root, args.split, args.out, log=print)
    print(f"wrote {out}; check it with `big validate {out} --split {args.split}`")
    return 0


def register(sub) -> None:
    p = sub.add_parser("ingest", help="run the ingestion program on a code submission (as CodaBench's prediction job)")
    p.add_argument("input_data", help="images-only folder ({flag}_{size}.npy; `big input-data`)")
    p.add_argument("output", help="prediction output folder (the 12 CSVs + ingestion_status.json); a folder of its "
                                  "own: other entries that appear there during the run are removed")
    p.add_argument("program", help="the unzipped submission (model.py + weights)")
    p.add_argument("--data-dir", help="fallback folder for images absent from INPUT_DATA (default /app/data)")
    p.add_argument("--config", help="ingestion config YAML (default ingestion_program/config.yaml)")
    p.add_argument("--time-budget", type=float, help="seconds for the whole run (overrides the config)")
    p.add_argument("--image", help="run the ingestion program with this CodaBench image's Python and pins (py312, "
                                   "gpu310, big-gpu310; `big image-env`), not this interpreter")
    p.add_argument("--venv", help="with --image: the image's venv folder (default .venv-IMAGE)")
    p.set_defaults(func=_ingest)

    p = sub.add_parser("input-data", help="images-only {flag}_{size}.npy folder of one split: the bundle's "
                                          "input_data, or /app/data on an organizer's own worker")
    p.add_argument("--data-root", help="folder with the MedMNIST+ npz files")
    p.add_argument("--split", choices=["train", "val", "test"])
    p.add_argument("--sizes", type=sizes_arg, default=[28], help="comma-separated sizes (default 28)")
    p.add_argument("--out", required=True, help="folder to write (replaced atomically)")
    p.add_argument("--allow-synthetic", action="store_true", help="accept files whose MD5 differs from medmnist INFO")
    p.add_argument("--verify", action="store_true", help="only check an existing folder against its manifest")
    p.set_defaults(func=_input_data)

    p = sub.add_parser("sample-submission", help="train the starting kit's sample model and package it as a code "
                                                 "submission zip")
    p.add_argument("--data-root", required=True, help="folder with the MedMNIST+ npz files (train split is used)")
    p.add_argument("--size", type=int, default=28, choices=[28, 64, 128, 224])
    p.add_argument("--out", default="sample_code_submission.zip")
    p.add_argument("--weights", help="where to keep the weights file (default OUT with .weights.npz)")
    p.add_argument("--max-train", type=int, default=20000, help="training images per dataset (0 = all)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_sample_submission)

    p = sub.add_parser("result-zip", help="run a code submission's model.py locally over npz files -> result zip")
    p.add_argument("--model", required=True, help="path to model.py")
    p.add_argument("--data-root", required=True, help="folder with the npz files (or {flag}_{size}.npy files)")
    p.add_argument("--split", required=True, choices=["val", "test"])
    p.add_argument("--out", required=True, help="result zip to write")
    p.set_defaults(func=_result_zip)
