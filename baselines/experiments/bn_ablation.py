#!/usr/bin/env python
"""The mm-PT BatchNorm ablation (issue 13): shared vs shared + recalibrate-bn vs per_dataset BatchNorm
statistics, each selected by val_loss and by mean_auc, over 3 seeds; test metrics as a table and a plot.

    python baselines/experiments/bn_ablation.py --data-root ../shared/data/medmnist --out /work/ablation_runs
    python baselines/experiments/bn_ablation.py --out /work/ablation_runs --report-only   # table again
    python baselines/experiments/bn_ablation.py --smoke --out /tmp/ablation_smoke          # seconds, synthetic

The logic lives in big/mmpt/ablation.py; this file only runs it. It writes nothing outside --out.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from big.mmpt.ablation import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
