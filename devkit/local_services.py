"""Start and stop the two local stand-ins for Azure: Azurite (Blob Storage) and the local Custom Vision service.

Why here and not in the tests: the demo, the benchmarks, `cvops function run-local` and the test fixtures all need the same
thing (free loopback port, wait until it answers, stop it for sure, also on failure), and one implementation keeps them honest.
Both run as real child processes speaking real HTTP; nothing is faked in-process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from cvops.errors import CvopsError

REPO_ROOT = Path(__file__).resolve().parent.parent

# Azurite's well-known development account. It is public (documented by Microsoft), not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# A well-formed ARM id for the local prediction "resource": publish needs one, and the local service checks its shape.
LOCAL_PREDICTION_RESOURCE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/cvops-local/providers/"
    "Microsoft.CognitiveServices/accounts/cvops-local-prediction"
)


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until(ready, *, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CvopsError(f"{what} exited with code {proc.returncode} before it was ready",
                             hint=f"see its log: {log}\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.05)
    raise CvopsError(f"{what} did not answer within {timeout:.0f} s", hint=f"see its log: {log}\n{_tail(log)}")


def _launch(cmd: list[str], *, log: Path, ready, what: str, timeout: float) -> subprocess.Popen:
    """Start `cmd` in its own process group with output to `log`, and wait until `ready()`; stopped again on failure."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
                                start_new_session=True)
    try:
        _wait_until(ready, timeout=timeout, what=what, proc=proc, log=log)
    except BaseException:
        _stop(proc)
        raise
    return proc


def _log_file(log_dir: Path | None, prefix: str, port: int) -> Path:
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix=f"cvops-{prefix}-log-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir / f"{prefix}-{port}.log"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a child and its own children: SIGTERM to its process group, then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


@dataclass
class Azurite:
    """A running Azurite on loopback ports: Blob Storage, and Queue Storage too unless it was started without."""

    port: int
    process: subprocess.Popen
    location: Path | None
    log: Path
    queue_port: int | None = None

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def queue_endpoint(self) -> str | None:
        return f"http://127.0.0.1:{self.queue_port}/{AZURITE_ACCOUNT}" if self.queue_port else None

    @property
    def connection_string(self) -> str:
        queue = f"QueueEndpoint={self.queue_endpoint};" if self.queue_port else ""
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={self.blob_endpoint};{queue}")

    def stop(self) -> None:
        _stop(self.process)


AZURITE_DIR_VARIABLE = "CVOPS_AZURITE_BIN"
"""Names the folder holding Azurite's launchers (``node_modules/.bin`` of wherever a team installed it)."""


def azurite_binary(name: str = "azurite-blob") -> Path:
    """Azurite's launcher: from ``$CVOPS_AZURITE_BIN``, this checkout's ``node_modules``, the working folder's, or PATH.

    Why several places: cvops' own tests find it in the checkout, but a team using the pytest plugin
    (:mod:`devkit.pytest_plugin`) has cvops installed from a wheel and Azurite in its own repository.
    """
    configured = os.environ.get(AZURITE_DIR_VARIABLE)
    if configured:
        binary = Path(configured) / name
        if not binary.exists():
            raise CvopsError(f"{AZURITE_DIR_VARIABLE} names {configured}, which holds no {name}",
                             hint="point it at the node_modules/.bin folder where 'npm install azurite' put Azurite")
        return binary
    for folder in (REPO_ROOT / "node_modules" / ".bin", Path.cwd() / "node_modules" / ".bin"):
        if (folder / name).exists():
            return folder / name
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise CvopsError(f"Azurite is not installed ({name} is in neither {REPO_ROOT / 'node_modules' / '.bin'}, "
                     f"{Path.cwd() / 'node_modules' / '.bin'} nor PATH)",
                     hint="run 'npm ci' in the repository root (make demo / make test do it), or 'npm install azurite' "
                          f"and set {AZURITE_DIR_VARIABLE} to its node_modules/.bin")


def start_azurite(*, port: int | None = None, location: Path | None = None, log_dir: Path | None = None,
                  queue: bool = True, timeout: float = 30.0) -> Azurite:
    """Start Azurite: Blob Storage, and Queue Storage (for the backlog queue) unless `queue=False`.

    `location=None` keeps its data in memory (tests); a folder persists it (demo). Both services run in one process
    (`azurite`, whose table service gets a free port too, unused), so one stop ends them all.
    """
    port = port or free_port()
    log = _log_file(log_dir, "azurite", port)
    cmd = [str(azurite_binary("azurite" if queue else "azurite-blob")), "--blobHost", "127.0.0.1", "--blobPort", str(port),
           "--skipApiVersionCheck", "--disableTelemetry", "--loose",
           # No access log: it prints every request line, SAS query (sig=...) included, into a log file people share.
           "--silent"]
    queue_port = free_port() if queue else None
    probe = [port]
    if queue_port:
        table_port = free_port()
        cmd += ["--queueHost", "127.0.0.1", "--queuePort", str(queue_port),
                "--tableHost", "127.0.0.1", "--tablePort", str(table_port)]
        probe.append(queue_port)
    if location is None:
        cmd.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        cmd += ["--location", str(location)]
    if shutil.which("node") is None:
        raise CvopsError("Node.js is not on PATH; Azurite needs it", hint="install Node.js 20 (https://nodejs.org)")

    def ready() -> bool:
        try:
            for p in probe:
                with socket.create_connection(("127.0.0.1", p), timeout=0.2):
                    pass
            return True
        except OSError:
            return False

    proc = _launch(cmd, log=log, ready=ready, what=f"Azurite on port {port}", timeout=timeout)
    return Azurite(port=port, process=proc, location=location, log=log, queue_port=queue_port)


@dataclass
class LocalCustomVision:
    """A running local Custom Vision service (`python -m emulator`) on a loopback port."""

    port: int
    process: subprocess.Popen
    log: Path
    training_key: str
    prediction_key: str
    flags: dict = field(default_factory=dict)
    prediction_resource_id: str = LOCAL_PREDICTION_RESOURCE_ID

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def training_client(self):
        """The official ``CustomVisionTrainingClient`` on this service, msrest's retries off (a test sees each answer)."""
        from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
        from msrest.authentication import ApiKeyCredentials

        client = CustomVisionTrainingClient(self.endpoint, ApiKeyCredentials(in_headers={"Training-key": self.training_key}))
        client.config.retry_policy.retries = 0
        return client

    def prediction_client(self):
        """The official ``CustomVisionPredictionClient`` on this service, msrest's retries off."""
        from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
        from msrest.authentication import ApiKeyCredentials

        client = CustomVisionPredictionClient(self.endpoint,
                                              ApiKeyCredentials(in_headers={"Prediction-key": self.prediction_key}))
        client.config.retry_policy.retries = 0
        return client

    def stop(self) -> None:
        _stop(self.process)


def start_local_custom_vision(*, port: int | None = None, data_dir: Path | None = None,
                              training_key: str | None = None, prediction_key: str | None = None,
                              latency_ms: int | None = None, prediction_tps: float | None = None,
                              training_tps: float | None = None, fault_rate: float | None = None,
                              fault_every: int | None = None, vision_tps: float | None = None,
                              content_safety_limit: str | None = None,
                              extra_args: list[str] | None = None, log_dir: Path | None = None,
                              timeout: float = 60.0) -> LocalCustomVision:
    """Start the local Custom Vision service. `data_dir=None` keeps everything in memory."""
    from emulator import DEFAULT_PREDICTION_KEY, DEFAULT_TRAINING_KEY

    port = port or free_port()
    training_key = training_key or DEFAULT_TRAINING_KEY
    prediction_key = prediction_key or DEFAULT_PREDICTION_KEY
    log = _log_file(log_dir, "custom-vision", port)
    cmd = [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", str(port),
           "--training-key", training_key, "--prediction-key", prediction_key]
    cmd += ["--data-dir", str(data_dir)] if data_dir is not None else ["--in-memory"]
    flags = {"latency-ms": latency_ms, "prediction-tps": prediction_tps, "training-tps": training_tps,
             "fault-rate": fault_rate, "fault-every": fault_every, "vision-tps": vision_tps,
             "content-safety-limit": content_safety_limit}
    for name, value in flags.items():
        if value is not None:
            cmd += [f"--{name}", str(value)]
    cmd += extra_args or []
    endpoint = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        # Any HTTP answer means the server is up; the domains call is cheap and needs only the training key.
        try:
            requests.get(f"{endpoint}/customvision/v3.3/training/domains", headers={"Training-Key": training_key}, timeout=0.5)
            return True
        except requests.RequestException:
            return False

    proc = _launch(cmd, log=log, ready=ready, what=f"the local Custom Vision service on port {port}", timeout=timeout)
    return LocalCustomVision(port=port, process=proc, log=log, training_key=training_key, prediction_key=prediction_key,
                             flags={k: v for k, v in flags.items() if v is not None})


@contextlib.contextmanager
def running_azurite(**kwargs) -> Iterator[Azurite]:
    """Azurite for the length of a `with` block; stopped on the way out, also on failure."""
    azurite = start_azurite(**kwargs)
    try:
        yield azurite
    finally:
        azurite.stop()


@contextlib.contextmanager
def running_local_custom_vision(**kwargs) -> Iterator[LocalCustomVision]:
    """The local Custom Vision service for the length of a `with` block; stopped on the way out, also on failure."""
    service = start_local_custom_vision(**kwargs)
    try:
        yield service
    finally:
        service.stop()
