"""BIG scoring program (CodaBench entry point): python3 score.py [INPUT OUTPUT].

INPUT holds ref/ (hidden labels) and res/ (predictions); defaults /app/input and /app/output.
All logic lives in the `big` package, which `big bundle` copies beside this file; in a checkout of
the repository the package is found one folder up, so this file also runs unchanged from the repo.
"""
import os
import sys
import time

T0 = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

from big import scoring  # noqa: E402


def main(argv):
    for stream in (sys.stdout, sys.stderr):  # a message quoting a participant's bytes never stops the run
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if len(argv) not in (0, 2):
        print("usage: score.py [INPUT_DIR OUTPUT_DIR]  (INPUT_DIR holds ref/ and res/)", file=sys.stderr)
        return 2
    inp, out = argv if argv else ("/app/input", "/app/output")
    try:
        config = scoring.load_config(os.path.join(HERE, "config.yaml"))
    except scoring.ReferenceDataError as exc:
        print(f"scoring configuration error: {exc.summary}", file=sys.stderr)
        return 2
    return scoring.run(os.path.join(inp, "res"), os.path.join(inp, "ref"), out, config=config, t0=T0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
