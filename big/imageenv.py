"""The CodaBench docker images as local virtualenvs: one table, one resolver (``big image-env``).

Each program of the bundle runs in the competition's ``docker_image`` on CodaBench. Without Docker
the closest thing is a virtualenv with the image's Python version and exact package pins. This
module holds the one table of those images (:data:`IMAGES`) and creates or finds such a venv; the
Makefile (``make test``), ``big run-local --image``, ``big ingest --image`` and the starting kit all
go through :func:`ensure`.

* ``py312``  = ``codalab/codalab-legacy:py312`` (results-only competitions);
* ``gpu310`` = ``codalab/codalab-legacy:gpu310`` (code track; torch 2.3.1, no torchvision/timm);
* ``big-gpu310`` = the competition image of ``docker/`` (gpu310 plus torchvision and timm): its venv
  is *layered* on the gpu310 venv exactly as the Dockerfile builds ``FROM`` gpu310 (the base venv's
  site-packages are on its path, its own pins installed on top, with the same constraints).

Pins come from the images' Dockerfiles (codabench.md §2.8; codalab/codalab-dockers dd2e27e4) where
they pin; packages the Dockerfiles leave unpinned are installed unpinned. Left out on purpose:
tensorflow in gpu310 (several GB, no BIG program uses it) — see :attr:`Image.not_installed`.
A venv records what it was built for in ``big-image.json``; a venv without that file (an older
``make venvs``) is accepted when its Python version and every pin check out.

Standard library only at import time (``big --help`` imports the CLI module that imports this).
"""
from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .errors import Problem, UsageError

#: the folder that holds the ``big`` package: a checkout of the repository or an unpacked starting kit
ROOT = Path(__file__).resolve().parents[1]
STAMP = "big-image.json"
LAYER_PTH = "_big_image_base.pth"


@dataclass(frozen=True)
class Image:
    name: str
    ref: str  # docker image reference (a glob for an organizer's own tag)
    python: str  # the image's exact Python version
    pins: Tuple[str, ...]  # requirement lines: "pkg==x.y.z" where the image pins, "pkg" where it does not
    purpose: str
    base: Optional[str] = None  # image this one is built FROM (its venv is layered on the base's venv)
    #: pip constraints for this image's own pins (transitive dependencies, pinned as the image builds them)
    constraints: Tuple[str, ...] = ()
    not_installed: Tuple[str, ...] = ()  # in the real image, deliberately not in the venv
    smoke: str = ""  # Python code that must run in the finished venv
    # -- what participants are told (the pages' and the starting kit's environment block) --
    cuda: Optional[str] = None  # the CUDA runtime of the image, if any
    #: packages whose version the venv pins but the image's Dockerfile does not (shown without a version)
    image_unpinned: Tuple[str, ...] = ()
    #: packages participants often expect that the image does NOT have (shown as "no X")
    absent: Tuple[str, ...] = ()

    @property
    def minor(self) -> str:
        return ".".join(self.python.split(".")[:2])


IMAGES: Dict[str, Image] = {img.name: img for img in (
    Image(
        name="py312", ref="codalab/codalab-legacy:py312", python="3.12.1",
        pins=("numpy==1.26.4", "scipy==1.11.4", "scikit-learn==1.5.1", "pandas==2.2.3", "matplotlib==3.8.4",
              "PyYAML==6.0.2", "psutil"),
        purpose="CodaBench's python 3.12 image: the results-only competition's scoring job",
        absent=("torch", "torchvision", "timm")),
    Image(
        name="gpu310", ref="codalab/codalab-legacy:gpu310", python="3.10.13",
        pins=("numpy==1.26.4", "scipy", "scikit-learn==1.5.0", "pandas==2.2.2", "matplotlib==3.9.0", "PyYAML==6.0.1",
              "torch==2.3.1"),
        purpose="CodaBench's CUDA image (python 3.10, torch 2.3.1, no torchvision, no timm): the code track",
        not_installed=("tensorflow",), cuda="12.4.1 runtime", image_unpinned=("scipy", "scikit-learn", "pandas"),
        absent=("torchvision", "timm"),
        smoke="import torch, numpy; assert torch.__version__.split('+')[0] == '2.3.1'"),
    Image(
        name="big-gpu310", ref="*/big-medmnist:gpu310", python="3.10.13", base="gpu310",
        pins=("torchvision==0.18.1", "timm==1.0.31"),
        constraints=("torch==2.3.1", "numpy==1.26.4", "PyYAML==6.0.1", "torchvision==0.18.1", "timm==1.0.31",
                     "huggingface_hub==2.4.0", "safetensors==0.8.0", "hf-xet==1.8.0", "httpx2==2.14.0",
                     "httpcore2==2.14.0", "anyio==4.16.0", "click==8.5.1", "exceptiongroup==1.3.2", "h11==0.16.0",
                     "idna==3.20", "tomli==2.5.0", "tqdm==4.70.1", "truststore==0.10.5"),
        purpose="the competition image of docker/ (gpu310 + torchvision and timm for mm-PT code submissions)",
        smoke="import timm, torchvision; timm.create_model('resnet18', pretrained=False, num_classes=2).eval()"),
)}


def contents(img: Image) -> List[str]:
    """What the image holds, as participants are told (one list for the pages and the starting kit):
    ``Python 3.10``, the CUDA runtime, each package with its version where the image pins it, the
    packages of the real image that its venv leaves out, then ``no X`` for what it lacks."""
    chain = [img]
    while chain[-1].base:
        chain.append(IMAGES[chain[-1].base])
    cuda = next((i.cuda for i in chain if i.cuda), None)
    out = [f"Python {img.minor}"] + ([f"CUDA {cuda}"] if cuda else [])
    unpinned = {requirement_name(n).lower() for i in chain for n in i.image_unpinned}
    have = {requirement_name(r).lower() for r in all_pins(img)}
    for req in (*all_pins(img), *(n for i in reversed(chain) for n in i.not_installed)):
        name = requirement_name(req)
        version = None if name.lower() in unpinned else pinned_version(req)
        out.append(f"{name} {version}" if version else name)
    out += [f"no {a}" for i in chain for a in i.absent if a.lower() not in have]
    return list(dict.fromkeys(out))


def names() -> List[str]:
    return list(IMAGES)


def lookup(name_or_ref: str) -> Image:
    """An image by its name (``gpu310``) or by a docker reference (``codalab/codalab-legacy:gpu310``)."""
    key = str(name_or_ref).strip()
    if key in IMAGES:
        return IMAGES[key]
    for img in IMAGES.values():
        if key == img.ref or fnmatch.fnmatchcase(key, img.ref):
            return img
    raise UsageError([Problem(f"unknown image {name_or_ref!r}: known are "
                              + ", ".join(f"{i.name} ({i.ref})" for i in IMAGES.values()))])


def requirement_name(req: str) -> str:
    return re.split(r"[=<>!~ ;\[]", req, maxsplit=1)[0].strip()


def pinned_version(req: str) -> Optional[str]:
    m = re.search(r"==\s*([^\s;,]+)", req)
    return m.group(1) if m else None


def all_pins(img: Image) -> Tuple[str, ...]:
    """The image's pins plus those of the images it is built on (what its Python must import)."""
    base = all_pins(IMAGES[img.base]) if img.base else ()
    return base + img.pins


def constraints_text(img: Image) -> str:
    """The pip constraints file of an image (docker/constraints.txt for big-gpu310)."""
    return "".join(line + "\n" for line in img.constraints)


def default_venv(name: str, root: Path = ROOT) -> Path:
    """``.venv-{name}`` beside the ``big`` package (the repository root, or the starting kit's)."""
    return Path(root) / f".venv-{name}"


# ---------------------------------------------------------------------------------------------
# finding the image's Python
# ---------------------------------------------------------------------------------------------

def pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def python_version(python: Union[str, os.PathLike]) -> Optional[str]:
    try:
        out = subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, timeout=60, env=clean_environ())
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(img: Image, explicit: Optional[str] = None,
                log: Optional[Callable[[str], None]] = None) -> Path:
    """pyenv's Python of exactly the image's version when present; else another patch release of the
    same minor version (pyenv's, then ``pythonX.Y`` on PATH) with a note; else a clear message."""
    note = log or (lambda m: None)
    if explicit:
        found = python_version(explicit)
        if found is None:
            raise UsageError([Problem(f"--python {explicit}: not a working Python interpreter")])
        if found.rsplit(".", 1)[0] != img.minor:
            raise UsageError([Problem(f"--python {explicit} is Python {found}; image {img.name} has Python "
                                      f"{img.python}: give a Python {img.minor}")])
        if found != img.python:
            note(f"note: {explicit} is Python {found}; the image has {img.python}")
        return Path(explicit)
    root = pyenv_root()
    exact = root / "versions" / img.python / "bin" / "python"
    if exact.is_file():
        return exact
    candidates = sorted((root / "versions").glob(f"{img.minor}.*/bin/python")) if (root / "versions").is_dir() else []
    on_path = shutil.which(f"python{img.minor}")
    for cand in [*candidates, *([Path(on_path)] if on_path else [])]:
        found = python_version(cand)
        if found and found.rsplit(".", 1)[0] == img.minor:
            note(f"note: image {img.name} has Python {img.python}; using {cand} (Python {found}) — "
                 f"`pyenv install {img.python}` gives the exact version")
            return cand
    raise UsageError([Problem(
        f"image {img.name} ({img.ref}) runs Python {img.python}, which is not installed here: install it with "
        f"`pyenv install {img.python}` (pyenv root {root}), or give --python /path/to/python{img.minor}")],
        summary=f"Python {img.python} for image {img.name} is missing (`pyenv install {img.python}`)")


# ---------------------------------------------------------------------------------------------
# the venv
# ---------------------------------------------------------------------------------------------

def clean_environ(extra: Optional[Dict[str, str]] = None, *, venv: Optional[Path] = None) -> Dict[str, str]:
    """An environment for an image's Python: no PYTHONPATH/PYTHONHOME, no user site-packages, no outer
    virtualenv; the venv's ``bin`` first on PATH (``python3`` there is the image's, as in the image)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "__PYVENV", "CONDA_PREFIX"))}
    env["PYTHONNOUSERSITE"] = "1"
    if venv is not None:
        env["PATH"] = str(Path(venv) / "bin") + os.pathsep + env.get("PATH", "")
        env["VIRTUAL_ENV"] = str(venv)
    if extra:
        env.update(extra)
    return env


_PROBE = r"""
import json, platform, sys
from importlib import metadata
out = {"python": platform.python_version(), "executable": sys.executable, "versions": {}}
for name in sys.argv[1:]:
    try:
        out["versions"][name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        out["versions"][name] = None
print(json.dumps(out))
"""


@dataclass
class ImageEnv:
    image: Image
    venv: Path
    python_version: str
    versions: Dict[str, Optional[str]]
    action: str = "found"  # found | created | updated
    notes: List[str] = field(default_factory=list)

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def environ(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        return clean_environ(extra, venv=self.venv)

    def describe(self) -> str:
        pins = ", ".join(f"{requirement_name(p)} {self.versions.get(requirement_name(p)) or '?'}"
                         for p in all_pins(self.image))
        return f"Python {self.python_version}; {pins}"


def _probe(python: Path, pins: Sequence[str]) -> Optional[dict]:
    try:
        out = subprocess.run([str(python), "-c", _PROBE, *[requirement_name(p) for p in pins]], capture_output=True,
                             text=True, timeout=120, env=clean_environ())
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _mismatches(pins: Sequence[str], versions: Dict[str, Optional[str]]) -> List[str]:
    """Pins the venv does not satisfy ("numpy==1.26.4 (found 2.1.0)")."""
    bad = []
    for req in pins:
        name = requirement_name(req)
        have = versions.get(name)
        want = pinned_version(req)
        if have is None:
            bad.append(f"{req} (missing)")
        elif want is not None and have.split("+")[0] != want:
            bad.append(f"{req} (found {have})")
    return bad


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, timeout=60, env=clean_environ(), check=True)
    return Path(out.stdout.strip())


def _run(cmd: List[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_environ())
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise UsageError([Problem(f"{what} failed (exit code {proc.returncode}):\n{tail}")],
                         summary=f"{what} failed; see the pip output above")


def _install(img: Image, venv: Path, pins: Sequence[str], log: Callable[[str], None]) -> None:
    py = venv / "bin" / "python"
    cmd = [str(py), "-m", "pip", "install", "-q", *pins]
    tmp = None
    try:
        if img.constraints:
            fd, tmp = tempfile.mkstemp(prefix=f"big-{img.name}-", suffix=".constraints.txt")
            with os.fdopen(fd, "w") as fh:
                fh.write(constraints_text(img))
            cmd += ["-c", tmp]
        log(f"pip install {' '.join(pins)} into {venv}")
        _run(cmd, f"installing the pins of image {img.name}")
    finally:
        if tmp:
            os.unlink(tmp)


def _write_stamp(env: ImageEnv) -> None:
    body = {"image": env.image.name, "ref": env.image.ref, "python": env.python_version,
            "pins": list(all_pins(env.image)), "base": env.image.base, "versions": env.versions}
    tmp = env.venv / f".{STAMP}.partial"
    tmp.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, env.venv / STAMP)


def inspect(name: str, venv: Optional[os.PathLike] = None) -> Tuple[Optional[ImageEnv], List[str]]:
    """Check an existing venv without changing anything: (env when it matches the image, problems)."""
    img = lookup(name)
    venv = Path(venv) if venv else default_venv(img.name)
    py = venv / "bin" / "python"
    if not py.exists():
        return None, [f"{venv} does not exist (create it with `big image-env {img.name}`)"]
    probe = _probe(py, all_pins(img))
    if probe is None:
        return None, [f"{py} does not run"]
    problems = []
    if probe["python"].rsplit(".", 1)[0] != img.minor:
        problems.append(f"{venv} has Python {probe['python']}; image {img.name} has Python {img.python}")
    problems += [f"{venv}: {m}" for m in _mismatches(all_pins(img), probe["versions"])]
    env = ImageEnv(img, venv, probe["python"], probe["versions"])
    return (None if problems else env), problems


def ensure(name: str, venv: Optional[os.PathLike] = None, *, python: Optional[str] = None,
           log: Callable[[str], None] = print, create: bool = True) -> ImageEnv:
    """Find or create the virtualenv of image ``name`` (a name or docker reference) at ``venv``
    (default ``.venv-{name}`` beside the package) with the image's Python and exact pins.

    An existing venv is kept when its Python's minor version matches; pins it does not satisfy are
    installed into it. A venv with another Python version is refused (remove it, or pick --venv).
    A layered image (``base``) first ensures its base's default venv.
    """
    img = lookup(name)
    venv = Path(venv).absolute() if venv else default_venv(img.name)
    base_env = ensure(img.base, log=log, create=create) if img.base else None
    with _locked(venv):
        return _ensure(img, venv, base_env, python, log, create)


@contextlib.contextmanager
def _locked(venv: Path) -> Iterator[None]:
    """One resolver at a time per venv (several `make test` or test runs may start together)."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(venv.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"big-image-env-{key}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ensure(img: Image, venv: Path, base_env: Optional[ImageEnv], python: Optional[str],
            log: Callable[[str], None], create: bool) -> ImageEnv:
    py = venv / "bin" / "python"
    action = "found"
    notes: List[str] = []
    if not py.exists():
        if not create:
            raise UsageError([Problem(f"{venv} does not exist: create it with `big image-env {img.name}`")])
        if venv.exists() and any(venv.iterdir()):
            raise UsageError([Problem(f"{venv} exists but is not a virtualenv; remove it or choose another --venv")])
        interpreter = find_python(img, python, log=notes.append)
        log(f"creating {venv} with {interpreter} for image {img.name} ({img.ref})")
        _run([str(interpreter), "-m", "venv", str(venv)], f"creating the virtualenv {venv}")
        action = "created"
    probe = _probe(py, all_pins(img))
    if probe is None:
        raise UsageError([Problem(f"{py} does not run; remove {venv} and run `big image-env {img.name}` again")])
    if probe["python"].rsplit(".", 1)[0] != img.minor:
        raise UsageError([Problem(f"{venv} has Python {probe['python']}, image {img.name} has Python {img.python}: "
                                  f"remove the folder or choose another --venv")])
    if probe["python"] != img.python:
        notes.append(f"note: {venv} has Python {probe['python']}; the image has {img.python}")
    if base_env is not None:
        site = _site_packages(py)
        pth = site / LAYER_PTH
        want = str(_site_packages(base_env.python)) + "\n"
        if not pth.is_file() or pth.read_text(encoding="utf-8") != want:
            pth.write_text(want, encoding="utf-8")  # the base image's packages, below this image's own
            probe = _probe(py, all_pins(img)) or probe
    missing = _mismatches(all_pins(img), probe["versions"])
    if missing:
        if not create:
            raise UsageError([Problem(f"{venv} does not match image {img.name}: {'; '.join(missing)}")])
        own = [p for p in img.pins if any(m.startswith(p + " ") for m in missing)]
        base_missing = [m for m in missing if not any(m.startswith(p + " ") for p in img.pins)]
        if base_missing:  # only possible for a layered image whose base changed under it
            raise UsageError([Problem(f"{venv}: the base image's packages do not check out: {'; '.join(base_missing)}")])
        _install(img, venv, own, log)
        action = "updated" if action == "found" else action
        probe = _probe(py, all_pins(img))
        still = _mismatches(all_pins(img), (probe or {}).get("versions", {}))
        if probe is None or still:
            raise UsageError([Problem(f"{venv} still does not match image {img.name} after pip install: "
                                      f"{'; '.join(still) or 'python does not run'}")])
    if img.smoke and action != "found":
        _run([str(py), "-c", img.smoke], f"the smoke test of image {img.name} ({img.smoke})")
    env = ImageEnv(img, venv, probe["python"], probe["versions"], action=action, notes=notes)
    stamp = venv / STAMP
    try:
        current = json.loads(stamp.read_text(encoding="utf-8")) if stamp.is_file() else None
    except ValueError:
        current = None
    if action != "found" or not current or current.get("pins") != list(all_pins(img)) \
            or current.get("versions") != env.versions:
        _write_stamp(env)
    for n in notes:
        log(n)
    return env
