"""Verbs of the CodaBench area: ``big bundle``, ``big lint``, ``big run-local``, ``big image-env``.

Imports nothing heavy at import time; each handler imports its module and returns an exit code.
"""
from __future__ import annotations

import argparse
import sys
from ..cli import sizes_arg


def _tracks(text: str):
    return [t.strip() for t in text.split(",") if t.strip()]


def _bundle(args) -> int:
    from ..errors import UsageError

    if args.benchmark == "robustness":  # BIG-C: big.robustness.bundle, from the set `big corrupt` wrote
        return _bundle_robustness(args)
    if args.corrupted:
        raise UsageError(["--corrupted goes with --benchmark robustness"])
    if not args.data_root:
        raise UsageError(["--data-root DIR is required: the folder with the MedMNIST+ npz files"])
    args.out = args.out or "big_bundle.zip"
    from . import bundle

    opts = bundle.BundleOptions(
        data_root=args.data_root, out=args.out, tracks=args.tracks, input_sizes=args.input_sizes,
        resolutions=args.resolutions or bundle.registry.SIZES, allow_synthetic=args.allow_synthetic,
        download=args.download, organizer=args.organizer, contact_email=args.contact_email, start=args.start,
        docker_image=args.docker_image, queue=args.queue, platform_cap=args.platform_cap, keep_folder=args.keep_folder,
        n_boot=args.n_boot, worker=args.worker, worker_network=args.worker_network)
    res = bundle.build_bundle(opts, log=print)
    bundle.print_result(res)
    return 0


def _bundle_robustness(args) -> int:
    from ..errors import UsageError
    from ..robustness import bundle as rb

    only_big = [f"--{k.replace('_', '-')}" for k in ("data_root", "tracks", "resolutions", "download", "n_boot",
                                                      "worker", "worker_network") if getattr(args, k)]
    if args.tracks == ["results", "code"]:
        only_big = [o for o in only_big if o != "--tracks"]
    if only_big or not args.corrupted:
        raise UsageError(["--benchmark robustness builds BIG-C from --corrupted CDIR (written by `big corrupt`)"
                          + (f"; {', '.join(only_big)} are options of the BIG bundle" if only_big else "")])
    res = rb.build(rb.RobustnessBundleOptions(
        corrupted=args.corrupted, out=args.out or rb.DEFAULT_OUT, input_sizes=args.input_sizes,
        allow_synthetic=args.allow_synthetic, organizer=args.organizer, contact_email=args.contact_email,
        start=args.start, docker_image=args.docker_image, queue=args.queue, platform_cap=args.platform_cap,
        keep_folder=args.keep_folder), log=print)
    rb.print_result(res)
    return 0


def _lint(args) -> int:
    from .lint import ERROR, lint_bundle

    findings = lint_bundle(args.bundle)
    for f in findings:
        print(str(f), file=sys.stderr if f.level == ERROR else sys.stdout)
    errors = sum(f.level == ERROR for f in findings)
    warnings = len(findings) - errors
    summary = f"{args.bundle}: {errors} error(s), {warnings} warning(s)"
    if errors or (args.strict and warnings):
        print(f"error: {summary}", file=sys.stderr)
        return 1
    print(f"OK: {summary}")
    return 0


def _run_local(args) -> int:
    from . import worker

    from ..errors import UsageError

    common = dict(python=args.python, image=args.image, venv=args.venv, docker=args.docker,
                  network=not args.network_none, gpu=args.gpus, time_limit=args.time_limit, data_dir=args.data_dir,
                  past_limit=args.past_limit)
    if args.kit is not None:
        from . import kit

        if args.bundle:
            raise UsageError(["give --bundle (an organizer's bundle) or --kit (the starting kit), not both"])
        if not args.data_root:
            raise UsageError(["--kit needs --data-root DIR: the MedMNIST+ files whose val split it scores "
                              "(e.g. ~/.medmnist)"])
        res = kit.run_kit(submission=args.submission, data_root=args.data_root, kit=args.kit or None,
                          reference=args.reference, allow_synthetic=args.allow_synthetic, phase=args.phase,
                          work_dir=args.work_dir, log=print, **common)
    else:
        if not args.bundle:
            raise UsageError(["give --bundle BUNDLE (organizers) or --kit (participants: the Development phase from "
                              "the starting kit with --data-root DIR)"])
        if args.data_root or args.reference or args.allow_synthetic:
            raise UsageError(["--data-root, --reference and --allow-synthetic go with --kit; a bundle holds its data"])
        res = worker.run_local(worker.RunLocalOptions(bundle=args.bundle, submission=args.submission, phase=args.phase,
                                                      work_dir=args.work_dir, **common), log=print)
    worker.print_result(res)
    return 0 if res.status == "Finished" and not res.problems and not res.missing else 1


def _image_env(args) -> int:
    from .. import imageenv

    if args.list:
        for img in imageenv.IMAGES.values():
            base = f" (FROM {img.base})" if img.base else ""
            print(f"{img.name:<11} {img.ref}{base}: Python {img.python}; {', '.join(img.pins)}")
            print(f"{'':<11} {img.purpose}"
                  + (f"; not installed: {', '.join(img.not_installed)}" if img.not_installed else ""))
        return 0
    if not args.image:
        from ..errors import UsageError

        raise UsageError(["give an image (" + ", ".join(imageenv.names()) + ") or --list"])
    if args.image == "auto":  # the image of the kit's (or repository's) competition.yaml
        from .bundle import load_yaml
        from .kit import kit_root

        args.image = str(load_yaml(kit_root() / "competition.yaml").get("docker_image") or "")
        print(f"auto: {args.image} (competition.yaml's docker_image)")
    if args.check:
        env, problems = imageenv.inspect(args.image, args.venv)
        if env is None:
            for p in problems:
                print(p, file=sys.stderr)
            print(f"error: the venv does not match image {args.image}", file=sys.stderr)
            return 1
    else:
        env = imageenv.ensure(args.image, args.venv, python=args.python, log=print)
    print(f"{env.image.name} ({env.image.ref}): {env.describe()} [{env.action}]")
    print(env.python)
    return 0


def register(sub) -> None:
    p = sub.add_parser("bundle", help="build the CodaBench competition bundle zip (then lint it)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--benchmark", choices=["big", "robustness"], default="big",
                   help="big: the BIG bundle from --data-root; robustness: the BIG-C bundle from --corrupted")
    p.add_argument("--data-root", help="folder with the MedMNIST+ npz files (BIG)")
    p.add_argument("--corrupted", metavar="CDIR", help="with --benchmark robustness: the corrupted set written by "
                                                       "`big corrupt` (CDIR/val, CDIR/test)")
    p.add_argument("--out", help="bundle zip to write (default big_bundle.zip; big_c_bundle.zip for robustness)")
    p.add_argument("--tracks", type=_tracks, default=["results", "code"],
                   help="results,code (code adds the ingestion program and input images)")
    p.add_argument("--input-sizes", type=sizes_arg, default=None,
                   help="image sizes in input_data for code submissions (default 28,64 within --resolutions)")
    p.add_argument("--resolutions", type=sizes_arg, default=None, help="accepted resolutions (default 28,64,128,224)")
    p.add_argument("--allow-synthetic", action="store_true", help="accept files whose MD5 differs (stamped SYNTHETIC)")
    p.add_argument("--download", action="store_true", help="fetch missing npz files (MD5-checked, progress shown)")
    p.add_argument("--organizer", help="organizer names for the About and Terms pages")
    p.add_argument("--contact-email", help="contact e-mail (competition.yaml and pages)")
    p.add_argument("--start", help="UTC start of the Development phase, YYYY-MM-DD[ HH:MM:SS]; later dates shift along")
    p.add_argument("--docker-image", help="override docker_image (default gpu310 with the code track, else py312)")
    p.add_argument("--queue", help="CodaBench queue vhost UUID (your own, e.g. GPU, worker): no platform cap")
    p.add_argument("--platform-cap", type=int, metavar="SECONDS",
                   help="the default queue's cap on every job (default 600, CodaBench's code default; codabench.org "
                        "has reported 1200); the ingestion budget and the pages use min(cap, execution_time_limit)")
    p.add_argument("--keep-folder", help="also keep the unzipped bundle in this folder")
    p.add_argument("--n-boot", type=int, help="bootstrap replicates of the scoring program (default: its config, 1000)")
    p.add_argument("--worker", help="your own worker as the pages describe it (with --queue; free text, e.g. "
                                    "\"1x NVIDIA A100 40 GB, 8 CPU cores, 64 GB memory\")")
    p.add_argument("--worker-network", choices=["enabled", "disabled"],
                   help="network inside the containers (default: enabled on CodaBench's default queue, not stated "
                        "with --queue); disabled needs --queue")
    p.set_defaults(func=_bundle)

    p = sub.add_parser("lint", help="check a bundle zip or folder against CodaBench's real rules")
    p.add_argument("bundle", help="bundle zip or folder")
    p.add_argument("--strict", action="store_true", help="warnings fail too")
    p.set_defaults(func=_lint)

    p = sub.add_parser("run-local", help="run a submission through a bundle (or the starting kit's Development "
                                         "phase) like CodaBench's compute worker")
    p.add_argument("--bundle", help="bundle zip or folder (organizers)")
    p.add_argument("--kit", nargs="?", const="", default=None, metavar="KIT_DIR",
                   help="participants: the Development phase from the starting kit (default: the kit holding this "
                        "big package), its labels and images made from --data-root")
    p.add_argument("--data-root", help="with --kit: the MedMNIST+ npz files (e.g. ~/.medmnist)")
    p.add_argument("--reference", help="with --kit: a val reference from `big build-reference --split val` "
                                       "(default: built from --data-root)")
    p.add_argument("--allow-synthetic", action="store_true",
                   help="with --kit: accept files whose MD5 differs (a `big synth` folder is accepted anyway)")
    p.add_argument("--submission", required=True, help="submission zip (results or code)")
    p.add_argument("--phase", default="development", help="development, test, a phase name or index")
    p.add_argument("--work-dir", help="run folder to create (default a new temporary folder)")
    p.add_argument("--image", help="run the programs with this image's Python and pins (py312, gpu310, big-gpu310; "
                                   "`auto`: the bundle's docker_image), its venv made by `big image-env`")
    p.add_argument("--venv", help="with --image: the image's venv folder (default .venv-IMAGE)")
    p.add_argument("--python", help="interpreter for `python3` in the programs' commands (default this one)")
    p.add_argument("--time-limit", type=int, help="replace the phase's execution_time_limit (seconds; the platform "
                                                  "cap still applies); the ingestion budget is lowered with it")
    p.add_argument("--data-dir", help="the worker host's data folder, mounted at /app/data (default: an empty folder)")
    p.add_argument("--past-limit", choices=["kill", "run-on"], default="kill",
                   help="what the emulated worker does when a job reaches its limit; CodaBench does either")
    p.add_argument("--docker", action="store_true", help="run each job in the competition's docker_image")
    p.add_argument("--network-none", action="store_true", help="with --docker: no network in the containers")
    p.add_argument("--gpus", action="store_true", help="pass the GPUs, as a worker started with USE_GPU=true "
                                                       "(default: none, like codabench.org's default queue)")
    p.set_defaults(func=_run_local)

    p = sub.add_parser("image-env", help="create or find the virtualenv of a CodaBench docker image (its Python "
                                         "and exact package pins); prints its interpreter last")
    p.add_argument("image", nargs="?", help="py312, gpu310, big-gpu310 (docker/), a docker image reference, or auto "
                                            "(the docker_image of the starting kit's competition.yaml)")
    p.add_argument("--venv", help="virtualenv folder (default .venv-IMAGE beside the big package)")
    p.add_argument("--python", help="interpreter of the image's Python version (default: pyenv's)")
    p.add_argument("--check", action="store_true", help="only check an existing venv; change nothing")
    p.add_argument("--list", action="store_true", help="list the images and their pins")
    p.set_defaults(func=_image_env)
