"""Record `cassettes/moderation_analyze_adult.yaml`: the Computer Vision 3.2 analyze call the Function App makes for
moderation (adult/racy/gore scores), made with the official SDK exactly as functions/vision.py makes it.

Against what:
- **Azure**, when ``VISION_MODERATION_ENDPOINT`` and ``VISION_MODERATION_KEY`` are in the environment: a real
  Computer Vision (Image Analysis 3.2) resource scores a generated beach scene.
- **Microsoft's official example** otherwise (../specs/computervision-v3.2/SuccessfulAnalyzeImageWithStream.json,
  served from a loopback server): there is no local Computer Vision service, and inventing adult scores would test
  the app on made-up data. The request (URL, query, headers) is still the SDK's own.

Either way tests/recording.py scrubs what is written: the endpoint becomes ``FAKE_VISION_ENDPOINT``, the key header
REDACTED, the image body is dropped. tests/functions/test_fn_moderation.py reads the scores from the cassette and sets
its policy bands around them, so both recordings pass.

Run:  .venv/bin/pytest tests/functions/test_fn_moderation.py --record-mode=rewrite   (records, then replays)
  or: .venv/bin/python tests/functions/record_moderation.py                          (records only)
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import vcr
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from tests.recording import FAKE_VISION_ENDPOINT, Scrubber, endpoint_rewrites, secret_rewrites, settings_from  # noqa: E402

EXAMPLE = HERE / "specs" / "computervision-v3.2" / "SuccessfulAnalyzeImageWithStream.json"
CASSETTE = HERE / "cassettes" / "moderation_analyze_adult.yaml"
AZURE_SETTINGS = ("VISION_MODERATION_ENDPOINT", "VISION_MODERATION_KEY")


def example_body() -> bytes:
    """The 200 answer of Microsoft's example, as the service sends it (JSON)."""
    return json.dumps(json.loads(EXAMPLE.read_text())["responses"]["200"]["body"]).encode()


@contextlib.contextmanager
def serving(body: bytes) -> Iterator[str]:
    """A loopback HTTP server answering every POST with ``body``; yields its endpoint."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self._read_body()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _read_body(self) -> None:
            """All of the request, or the client is still sending when the answer closes the connection. The
            SDK streams the image chunked."""
            if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
                self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                return
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                self.rfile.read(size + 2)  # the chunk and its CRLF
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers, then the blank line
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def record(cassette: Path, endpoint: str, key: str) -> dict[str, float]:
    """One analyze call (visual feature Adult) on a generated scene, recorded into a fresh ``cassette``; returns
    the scores the service gave. Chunked image bodies are read by the SDK's adapter and never reach the cassette."""
    import io

    from azure.cognitiveservices.vision.computervision.models import VisualFeatureTypes

    from cvops.clients import computer_vision_client
    from devkit import scenes

    scrubber = Scrubber(drop_request_bodies=True)
    scrubber.use([*endpoint_rewrites(endpoint, FAKE_VISION_ENDPOINT), *secret_rewrites(key)])
    recorder = vcr.VCR(record_mode="all", **scrubber.vcr_config())
    # 256x192: Image Analysis refuses images under 50 px a side; a scene rather than a flat colour for a real score.
    image = scenes.generate("beach", 6, size=(256, 192))
    cassette.unlink(missing_ok=True)
    with recorder.use_cassette(str(cassette)):
        result = computer_vision_client(endpoint, key).analyze_image_in_stream(
            io.BytesIO(image), visual_features=[VisualFeatureTypes.adult])
    return {"adult": result.adult.adult_score, "racy": result.adult.racy_score, "gore": result.adult.gore_score}


def record_cassette(cassette: Path, environ: Mapping[str, str]) -> tuple[str, dict[str, float]]:
    """Record against Azure when its settings are in ``environ``, else against the official example; returns which
    ("azure" or "example") and the scores."""
    azure = settings_from(environ, AZURE_SETTINGS)
    if azure is not None:
        return "azure", record(cassette, azure["VISION_MODERATION_ENDPOINT"], azure["VISION_MODERATION_KEY"])
    with serving(example_body()) as endpoint:
        return "example", record(cassette, endpoint, "recording-key-not-a-secret")


def recorded_scores(cassette: Path = CASSETTE) -> dict[str, float]:
    """The adult/racy/gore scores in a cassette's (only) answer: what a replay will hand the app."""
    interactions = yaml.safe_load(cassette.read_text())["interactions"]
    body = interactions[0]["response"]["body"]["string"]
    adult = json.loads(body)["adult"]
    return {"adult": adult["adultScore"], "racy": adult["racyScore"], "gore": adult["goreScore"]}


def main() -> None:
    against, scores = record_cassette(CASSETTE, os.environ)
    print(f"recorded {CASSETTE.relative_to(REPO)} against {against}: " +
          ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
