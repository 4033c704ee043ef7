"""Prepare the offline wheelhouse the starting-kit test installs from (`make test` runs this).

    python scripts/kit_wheelhouse.py .wheelhouse

Reads pyproject.toml (the starting kit ships it unchanged): the build backend's requirement
(``setuptools>=X``) and the runtime dependencies. Downloads, for this interpreter's platform,
setuptools at exactly X, the lowest version the requirement allows (so the test builds the kit
with the oldest setuptools it declares), and wheels for the dependencies. Writes wheelhouse.json
last; when it already matches pyproject.toml nothing is downloaded. The test then runs
``pip install --no-index --find-links .wheelhouse -e KIT`` in a fresh virtualenv: no registry
is reached from inside pytest.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore

ROOT = Path(__file__).resolve().parents[1]
STAMP = "wheelhouse.json"


def plan(pyproject: Path = ROOT / "pyproject.toml") -> dict:
    doc = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    requires = doc["build-system"]["requires"]
    setuptools = next((r for r in requires if re.match(r"^setuptools\s*>=", r)), None)
    if setuptools is None:
        raise SystemExit(f"{pyproject}: build-system.requires has no 'setuptools>=X' ({requires})")
    oldest = setuptools.split(">=", 1)[1].split(",")[0].strip()
    deps = list(doc["project"]["dependencies"])
    return {"setuptools": oldest, "dependencies": deps, "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
            "key": hashlib.sha256(json.dumps([oldest, deps, sys.version_info[:2]]).encode()).hexdigest()[:16]}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else ROOT / ".wheelhouse")
    want = plan()
    stamp = out / STAMP
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")).get("key") == want["key"]:
        print(f"{out}: up to date (setuptools=={want['setuptools']}, {len(want['dependencies'])} dependencies)")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(out)]
    subprocess.run(pip + ["--no-deps", f"setuptools=={want['setuptools']}"], check=True)
    subprocess.run(pip + want["dependencies"], check=True)
    stamp.write_text(json.dumps(want, indent=1) + "\n", encoding="utf-8")
    print(f"{out}: setuptools=={want['setuptools']} and wheels for {', '.join(want['dependencies'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
