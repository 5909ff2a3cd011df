"""The background worker that trains iterations, one at a time.

TrainProject answers at once with an iteration in status "Training" (as Azure does); this worker then reads the cached
features, calls the classifier and records "Completed" (model + out-of-fold data for performance) or "Failed" with a
reason the caller can act on (GetIteration's trainingErrorDetails). Whatever goes wrong, the iteration leaves
"Training": a job stuck there would block every later TrainProject of the project (BadRequestTrainingAlreadyInProgress).
One worker thread: the machine is shared, and Azure also trains one iteration per project at a time.

Advanced training also learns from mirrored copies of the images (`augmented_features`), as Azure's Advanced training
augments its data; their features are computed the first time an Advanced job needs them and cached.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from .models import CustomVisionBackend, TrainingJob, UnreadableTrainingImages

log = logging.getLogger("emulator.training_worker")


class TrainingWorker:
    def __init__(self, backend: CustomVisionBackend) -> None:
        self.backend = backend
        self._jobs: queue.Queue[TrainingJob | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="cv-training", daemon=True)
        backend._submit_training = self.submit
        self._thread.start()

    def submit(self, job: TrainingJob) -> None:
        self._jobs.put(job)

    def stop(self, timeout: float = 5.0) -> None:
        self._jobs.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self.run_job(job)

    def run_job(self, job: TrainingJob) -> None:
        started = time.monotonic()
        try:
            compact = _is_compact(job.domain_id)
            extract = self.backend.compact_training_features if compact else self.backend.training_features
            features = extract(job.image_ids)
            augmented = extract(job.image_ids, mirrored=True) if job.advanced else None
            result = self.backend.learning.train(
                features, job.labels, len(job.tag_ids), job.classification_type, advanced=job.advanced,
                budget_seconds=job.budget_seconds, seed=0, augmented_features=augmented)
            model = result.model.to_json()
            if compact:  # the iteration's model is the ONNX graph these weights complete
                from . import compact_model

                model = compact_model.training_model_json(model, job.tag_names)
        except UnreadableTrainingImages as exc:
            log.warning("iteration %s failed: %s", job.iteration_id, exc)
            self._fail(job, str(exc), started)
            return
        except Exception as exc:  # any failure of the learning code becomes a Failed iteration, never a dead worker
            log.exception("training of iteration %s failed", job.iteration_id)
            self._fail(job, f"Training failed: {type(exc).__name__}: {exc}. Train the project again; if it fails "
                            "again, the local service's log has the details.", started)
            return
        try:
            self.backend.finish_training(job, model=model, oof=result.oof_probabilities, folds=result.fold_of_image,
                                         settings=result.settings, error=None,
                                         elapsed_seconds=time.monotonic() - started)
        except Exception as exc:  # recording failed (e.g. the database): still leave "Training"
            log.exception("recording iteration %s failed", job.iteration_id)
            self._fail(job, f"Training finished but could not be recorded: {type(exc).__name__}: {exc}.", started)
            return
        log.info("iteration %s trained on %d images in %.1f s", job.iteration_id, len(job.image_ids),
                 time.monotonic() - started)

    def _fail(self, job: TrainingJob, reason: str, started: float) -> None:
        try:
            self.backend.finish_training(job, model=None, oof=None, folds=None, settings=None, error=reason,
                                         elapsed_seconds=time.monotonic() - started)
        except Exception:  # the database itself is gone; a restart marks the iteration Failed
            log.exception("could not record the failure of iteration %s", job.iteration_id)


def _is_compact(domain_id: str) -> bool:
    """A compact classification domain: its iterations are ONNX graphs (`emulator.compact_model`), trained on the
    graph's own features."""
    if not domain_id:
        return False
    from . import compact_model

    return compact_model.is_compact(domain_id)
