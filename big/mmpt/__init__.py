"""mm-PT baselines: multi-domain multi-task training of one timm backbone with one head per dataset.

Modules: ``config`` (YAML + overrides), ``model`` (backbone, heads, on-device preprocessing),
``sampler`` (proportional-to-remaining-batches interleaving), ``loader`` (uint8 batches from the
memory-mapped cache), ``train`` (the loop, checkpoints, logs, DDP), ``predict``, ``export``, ``cli``.
Everything that needs torch imports it inside this package, never from ``big.cli``.
"""
