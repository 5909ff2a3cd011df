"""The thin layer between the commands and the Custom Vision / Blob SDKs.

Why one object per run: every SDK call must go through ``cvops.retry.call`` with a pacer at the tier's rate, and the
pacers must be shared by all threads of the run (three pacers: training calls, TrainProject, prediction), so they
live here with the clients. Clients are built lazily: `cvops images lint` needs no Custom Vision settings at all, and a
missing setting is reported only by the command that needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any, TypeVar

from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.storage.blob import BlobServiceClient

from cvops import clients, limits
from cvops.errors import CvopsError
from cvops.pacing import Pacer
from cvops.retry import RetryPolicy, call
from pipelines import config
from pipelines.plan import ProjectState, TagState, find_project

T = TypeVar("T")
C = TypeVar("C")
PAGE = limits.MAX_PAGE_SIZE  # GetImages' largest `take`


class Service:
    def __init__(self, settings: config.Settings, *, policy: RetryPolicy | None = None,
                 training: CustomVisionTrainingClient | None = None,
                 prediction: CustomVisionPredictionClient | None = None,
                 blob_service: BlobServiceClient | None = None):
        self.settings = settings
        self.policy = policy or RetryPolicy()
        rates = settings.rates
        self.training_pacer = Pacer(rates.training)
        self.train_pacer = Pacer(rates.train_project)
        self.prediction_pacer = Pacer(rates.prediction)
        self.calls: dict[str, int] = {}
        if training is not None:
            self.__dict__["training"] = training
        if prediction is not None:
            self.__dict__["prediction"] = prediction
        if blob_service is not None:
            self.__dict__["blob_service"] = blob_service

    # clients ------------------------------------------------------------------------------------------------------
    @cached_property
    def training(self) -> CustomVisionTrainingClient:
        return clients.training_client(self.settings.require(config.TRAINING_ENDPOINT),
                                       self.settings.require(config.TRAINING_KEY))

    @cached_property
    def prediction(self) -> CustomVisionPredictionClient:
        return clients.prediction_client(self.settings.require(config.PREDICTION_ENDPOINT),
                                         self.settings.require(config.PREDICTION_KEY))

    @cached_property
    def blob_service(self) -> BlobServiceClient:
        return clients.blob_service_client(**self.settings.storage())

    # calls --------------------------------------------------------------------------------------------------------
    def _count(self, kind: str) -> None:
        self.calls[kind] = self.calls.get(kind, 0) + 1

    def _paced(self, kind: str, client: C, pacer: Pacer, what: str, fn: Callable[[C], T], *, idempotent: bool) -> T:
        """One counted call of ``kind`` through the shared retry layer at ``pacer``'s rate."""

        def attempt() -> T:
            self._count(kind)
            return fn(client)

        return call(attempt, what=what, pacer=pacer, policy=self.policy, idempotent=idempotent)

    def training_call(self, what: str, fn: Callable[[CustomVisionTrainingClient], T], *, idempotent: bool = True) -> T:
        """One training-API call, paced and retried."""
        return self._paced("training", self.training, self.training_pacer, what, fn, idempotent=idempotent)

    def start_training(self, what: str, fn: Callable[[CustomVisionTrainingClient], T]) -> T:
        """TrainProject has its own, lower, limit on F0; and it is not idempotent (a repeat could start a 2nd run)."""
        return self._paced("train", self.training, self.train_pacer, what, fn, idempotent=False)

    def prediction_call(self, what: str, fn: Callable[[CustomVisionPredictionClient], T]) -> T:
        """One prediction-API call, paced at the tier's prediction rate."""
        return self._paced("prediction", self.prediction, self.prediction_pacer, what, fn, idempotent=True)

    # lookups ------------------------------------------------------------------------------------------------------
    def classification_domains(self) -> dict[str, str]:
        domains = self.training_call("list domains", lambda c: c.get_domains())
        return {d.name: d.id for d in domains if d.type == "Classification"}

    def projects(self) -> list[ProjectState]:
        return [project_state(p) for p in self.training_call("list projects", lambda c: c.get_projects())]

    def project(self, name_or_id: str) -> ProjectState:
        """A project by id or by name; a clear error when there is none."""
        projects = self.projects()
        for p in projects:
            if p.id == name_or_id:
                return p
        found = find_project(name_or_id, projects)
        if found is None:
            raise CvopsError(f"no Custom Vision project named {name_or_id!r} at this endpoint",
                             hint="run `cvops project apply SPEC.yaml` first, or check --project / the endpoint")
        return found

    def tags(self, project_id: str) -> list[TagState]:
        tags = self.training_call("list tags", lambda c: c.get_tags(project_id))
        return [TagState(t.id, t.name, t.description or "", t.image_count or 0) for t in tags]

    def image_count(self, project_id: str) -> int:
        return int(self.training_call("count images", lambda c: c.get_image_count(project_id, tagging_status="All")) or 0)

    def image_metadata(self, project_id: str) -> Iterator[dict[str, str] | None]:
        """The metadata of every image of the project, page by page (:data:`PAGE` per call)."""
        skip = 0
        while True:
            page = self.training_call(f"list images {skip}-{skip + PAGE}",
                                      lambda c, s=skip: c.get_images(project_id, tagging_status="All", take=PAGE, skip=s))
            for image in page:
                yield image.metadata
            if len(page) < PAGE:
                return
            skip += PAGE

    def iterations(self, project_id: str) -> list[Any]:
        return list(self.training_call("list iterations", lambda c: c.get_iterations(project_id)))

    def iteration(self, project_id: str, ref: str | None) -> Any:
        """An iteration by id or name, or the newest Completed one for ``None``/``latest``."""
        iterations = self.iterations(project_id)
        if ref in (None, "", "latest"):
            done = [it for it in iterations if it.status == "Completed"]
            if not done:
                raise CvopsError("the project has no completed iteration yet", hint="run `cvops train --wait` first")
            return max(done, key=lambda it: it.trained_at or it.created)
        for it in iterations:
            if ref in (it.id, it.name):
                return it
        raise CvopsError(f"no iteration {ref!r} in the project",
                         hint="`cvops status` lists the iterations; or pass --iteration latest")

    def published(self, project_id: str, publish_name: str) -> Any | None:
        for it in self.iterations(project_id):
            if it.publish_name == publish_name:
                return it
        return None


def project_state(p: Any) -> ProjectState:
    settings = p.settings
    return ProjectState(id=p.id, name=p.name, description=p.description or "",
                        domain_id=getattr(settings, "domain_id", "") or "",
                        classification_type=getattr(settings, "classification_type", None),
                        export_platforms=tuple(getattr(settings, "target_export_platforms", None) or ()),
                        image_count=0)
