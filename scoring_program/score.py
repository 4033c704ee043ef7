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
    return scoring.program_main(argv, here=HERE, t0=T0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
