"""BIG ingestion program (CodaBench entry point).

    python3 ingest.py [INPUT_DATA OUTPUT INGESTED_PROGRAM] [--data-dir DIR] [--time-budget SECONDS]

Defaults: /app/input_data /app/output /app/ingested_program and /app/data (images-only fallback on
an organizer's own worker). Options come from config.yaml beside this file (`time_budget_s` is
written by `big bundle`). All logic lives in the `big` package, which `big bundle` copies beside
this file; in a checkout of the repository it is found one folder up, so this file runs unchanged
from the repo, from a bundle and from the local worker emulator.
"""
import os
import sys
import time

T0 = time.monotonic()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

from big import ingestion  # noqa: E402

if __name__ == "__main__":
    sys.exit(ingestion.main(sys.argv[1:], config_path=os.path.join(HERE, "config.yaml"), t0=T0))
