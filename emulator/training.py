"""The background worker that trains iterations, one at a time.

TrainProject answers at once with an iteration in status "Training" (as Azure does); this worker then reads the cached
features, calls the learner and records "Completed" (model + out-of-fold data for performance) or "Failed" with a
reason. One worker thread: the machine is shared, and Azure also trains one iteration per project at a time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import numpy as np

from .models import CustomVisionBackend, TrainingJob

log = logging.getLogger("emulator.training")


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
            features = np.stack([self.backend.features_of(i) for i in job.image_ids])
            result = self.backend.learning.train(
                features, job.labels, len(job.tag_ids), job.classification_type, advanced=job.advanced,
                budget_seconds=job.budget_seconds, seed=0)
            model = result.model.to_json()
        except Exception as exc:  # any failure of the learning code becomes a Failed iteration, never a dead worker
            log.exception("training of iteration %s failed", job.iteration_id)
            self.backend.finish_training(job, model=None, oof=None, folds=None, settings=None,
                                         error=f"Training failed: {type(exc).__name__}: {exc}",
                                         elapsed_seconds=time.monotonic() - started)
            return
        self.backend.finish_training(job, model=model, oof=result.oof_probabilities, folds=result.fold_of_image,
                                     settings=result.settings, error=None,
                                     elapsed_seconds=time.monotonic() - started)
        log.info("iteration %s trained on %d images in %.1f s", job.iteration_id, len(job.image_ids),
                 time.monotonic() - started)
