"""The ingestion program: runs a participant's ``Model`` over the split's images and writes the CSVs.

CodaBench runs it in the prediction job (codabench.md §2.2-2.5) with the submission's files at
/app/ingested_program, the images at /app/input_data and the shared output at /app/output. A zip
without a metadata file has already been copied into /app/output, and the platform ignores our exit
code, so everything the scorer needs to know goes into ``/app/output/ingestion_status.json``.

Participant API (starting_kit/README.md)::

    model.py (zip root or one wrapping folder)
        class Model:
            resolution = 28          # or 64, 128, 224
            batch_size = 256         # optional
            def predict(self, dataset: str, images: np.ndarray) -> np.ndarray: ...

``images`` is a uint8 batch exactly as in the medmnist npz ((B,S,S) or (B,S,S,3)); the result is
(B, C) scores in [0, 1]. Weights and helpers live beside model.py and are found relative to it.

Design: a supervisor process (:func:`program.run_ingestion` with :mod:`.supervisor`) and a worker
process that imports the participant's code (:mod:`.worker`). The supervisor never runs participant code, so it can
always stop the model at the time budget (its whole process tree, however detached: :mod:`.reaper`),
survive a crash of it, and cap what it prints (participant output goes through a pipe into a capped
log). The worker streams each ``{flag}_{size}.npy`` through short-lived memory-map windows (resident
memory stays at one window whatever the dataset size), converts and checks every batch's output
(:func:`.outputs.as_scores`) and appends its rows to a CSV in a staging folder.

Everything the model can reach is untrusted: it runs in the worker, so it can write to the message
channel (:mod:`.protocol` validates every line), into the staging folder and the output, and signal
the supervisor. After the model's tree is gone the supervisor reads the 12 CSVs back with the
scorer's own reader against the row counts of the images it was given (:mod:`.results`), removes
from the output whatever the model wrote there, places the checked CSVs and writes
``ingestion_status.json`` last. A result submission's own ``ingestion_status.json`` is removed.

Imports: numpy and the standard library only (this runs in codalab-legacy:gpu310 with python 3.10).
torch is never imported here; when the participant's module imported it, predictions run under
``torch.no_grad()`` and the device is logged.

Modules, along the seams of a run:

- :mod:`.config`      ``config.yaml`` options and the container paths;
- :mod:`.kind`        code, result or invalid submission; the platform's copy of the submission;
- :mod:`.images`      locating, checking and streaming the images;
- :mod:`.outputs`     checks of one predict() result and its CSV rows;
- :mod:`.worker`      the process that imports and runs the participant's model;
- :mod:`.logs`        the capped echo of the model's output;
- :mod:`.protocol`    the worker's messages and their validation;
- :mod:`.reaper`      finding and stopping the model's whole process tree (Linux);
- :mod:`.supervisor`  starts the worker, reads its messages, enforces the budget;
- :mod:`.results`     reading the CSVs back, cleaning the output;
- :mod:`.program`     the entry point: status file, outputs, ``main``;
- :mod:`.local`       the same checks for a predict callable run in this process (result zips).
"""
from .config import (DEFAULT_DATA_DIR, DEFAULT_INPUT_DATA, DEFAULT_OUTPUT, DEFAULT_PROGRAM,
                     IngestionConfig, load_config)
from .images import check_images, image_dirs, iter_batches, iter_npz_batches, locate_images
from ..kind import MODEL_FILE
from .kind import Classified, classify_submission, remove_copied_submission
from .local import predict_local, result_zip_from_model
from .outputs import as_scores, check_output, csv_header, csv_rows
from .program import TRACK, main, run_ingestion, write_status
from .worker import ModelFailure, load_model, participant_traceback

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_INPUT_DATA", "DEFAULT_OUTPUT", "DEFAULT_PROGRAM", "IngestionConfig", "load_config",
           "check_images", "image_dirs", "iter_batches", "iter_npz_batches", "locate_images", "MODEL_FILE", "Classified",
           "classify_submission", "remove_copied_submission", "predict_local", "result_zip_from_model", "as_scores", "check_output",
           "csv_header", "csv_rows", "TRACK", "main", "run_ingestion", "write_status", "ModelFailure", "load_model",
           "participant_traceback"]
