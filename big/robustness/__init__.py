"""BIG-C: the robustness benchmark on clinically realistic corruptions (MedMNIST-C), a second bundle.

The same 12 MedMNIST+ 2D datasets and the same participant API (``Model.predict(dataset, images)``)
as the BIG benchmark, scored on corrupted copies of a seeded, stratified sample of each dataset's
test (Test phase, private seed) or validation split (Development phase, public seed).

Data flow::

    MedMNIST+ {flag}_224.npz ── big corrupt (its own venv: medmnistc, or --stand-in) ──> CDIR/{val,test}/
        manifest.json (generator, seed, package versions, sample ids, corruptions, AlexNet baselines)
        {flag}/images_{size}.npy   clean copy + every corruption x severity, in canonical order
        {flag}/labels.npy  {flag}/source_index.npy
    CDIR ── big bundle --benchmark robustness ──> input_data/    pooled, shuffled images under opaque ids
                                              └─> reference_data/ labels + id -> (corruption, severity, source)

Modules: :mod:`.columns` (score keys = leaderboard columns, one table), :mod:`.layout` (the corrupted
set: sampling, manifest, reading), :mod:`.standin` (numpy stand-in corruptions, never MedMNIST-C),
:mod:`.corrupt` (generation; medmnistc imported only there, only in the robustness venv),
:mod:`.task` (pooling into input and reference data), :mod:`.scoring` and :mod:`.report` (the
scoring program), :mod:`.bundle` (the second CodaBench bundle), :mod:`.cli` (``big corrupt``).

The main venv, the scorer and the ingestion program never import medmnistc.
"""

BENCHMARK = "robustness"
