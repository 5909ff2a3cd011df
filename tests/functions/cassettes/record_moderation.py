"""Re-record `moderation_analyze_adult.yaml`: the Computer Vision 3.2 analyze call the Function App makes for moderation.

There is no Computer Vision service to record against here, and a real one would need a key. So this script serves
the official example answer (../specs/computervision-v3.2/SuccessfulAnalyzeImageWithStream.json) from a loopback
HTTP server, makes the call with the official SDK exactly as functions/vision.py does, and records it with vcrpy:
the request's URL, query and headers are the SDK's own. The loopback address is rewritten to a documented fake
endpoint, the key header and the image body are dropped, so the cassette holds no secret and no real resource name.

Run from the repository root:  .venv/bin/python tests/functions/cassettes/record_moderation.py
"""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import vcr
from azure.cognitiveservices.vision.computervision.models import VisualFeatureTypes
from PIL import Image
from vcr.request import Request

from cvops.clients import computer_vision_client

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "specs" / "computervision-v3.2" / "SuccessfulAnalyzeImageWithStream.json"
CASSETTE = HERE / "moderation_analyze_adult.yaml"
FAKE_ENDPOINT = "https://fake-vision.cognitiveservices.azure.com"


def main() -> None:
    body = json.dumps(json.loads(EXAMPLE.read_text())["responses"]["200"]["body"]).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    local = f"http://127.0.0.1:{server.server_address[1]}"

    def to_fake(request):
        # A new request without the image body: it is a stream (not matched on replay) and would not serialise
        # as plain YAML.
        return Request(request.method, request.uri.replace(local, FAKE_ENDPOINT), None, dict(request.headers))

    recorder = vcr.VCR(record_mode="all", decode_compressed_response=True,
                       filter_headers=["Ocp-Apim-Subscription-Key", "Authorization", "User-Agent",
                                       "x-ms-client-request-id"],
                       before_record_request=to_fake)
    image = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 160, 200)).save(image, "JPEG")
    CASSETTE.unlink(missing_ok=True)
    try:
        with recorder.use_cassette(str(CASSETTE)):
            client = computer_vision_client(local, "recording-key")
            result = client.analyze_image_in_stream(io.BytesIO(image.getvalue()),
                                                    visual_features=[VisualFeatureTypes.adult])
    finally:
        server.shutdown()
    print(f"recorded {CASSETTE.name}: adult {result.adult.adult_score}, racy {result.adult.racy_score}, "
          f"gore {result.adult.gore_score}")


if __name__ == "__main__":
    main()
