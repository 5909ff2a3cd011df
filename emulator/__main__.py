"""`python -m emulator` / `cvops-emulator`: run the local Custom Vision service."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from types import FrameType

from . import DEFAULT_PREDICTION_KEY, DEFAULT_TRAINING_KEY
from .fetch import DEFAULT_ALLOWED_HOSTS
from .server import CustomVisionApp, ServiceConfig, make_service_server


def _fraction(value: str) -> float:
    f = float(value)
    if not 0.0 <= f <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return f


def _positive(value: str) -> float:
    f = float(value)
    if not (math.isfinite(f) and f > 0):
        raise argparse.ArgumentTypeError("must be a positive number")
    return f


def _whole(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _calls_per_period(value: str) -> tuple[int, float]:
    count, _, seconds = value.partition("/")
    try:
        parsed = (int(count), float(seconds or 1))
    except ValueError:
        raise argparse.ArgumentTypeError("must be CALLS/SECONDS, e.g. 1000/10") from None
    if parsed[0] < 1 or not (math.isfinite(parsed[1]) and parsed[1] > 0):
        raise argparse.ArgumentTypeError("must be CALLS/SECONDS with positive numbers, e.g. 1000/10")
    return parsed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cvops-emulator",
        description="A local Custom Vision service: the official Training (v3.3, v3.4-preview) and Prediction "
                    "(v3.0, v3.1) REST APIs on one port, with real training. Advanced training's "
                    "reservedBudgetInHours is scaled: 1 budget hour = at most 1 minute of wall time.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=5080, help="port (0: any free port)")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--data-dir", default=".local/customvision",
                       help="where state is kept between runs (SQLite, images, models)")
    store.add_argument("--in-memory", action="store_true", help="keep everything in memory; nothing is written")
    p.add_argument("--training-key", default=DEFAULT_TRAINING_KEY, help="expected Training-Key header")
    p.add_argument("--prediction-key", default=DEFAULT_PREDICTION_KEY, help="expected Prediction-Key header")
    p.add_argument("--moderation-key", default=None,
                   help="expected Ocp-Apim-Subscription-Key of the moderation APIs (default: the prediction key, as "
                        "one multi-service resource has one key)")
    p.add_argument("--vision-tps", type=_positive, default=None,
                   help="Computer Vision analyze calls per second before 429 (Azure S1: 10)")
    p.add_argument("--content-safety-limit", type=_calls_per_period, default=None, metavar="CALLS/SECONDS",
                   help="Content Safety calls per period before 429 (Azure F0 and S0: 1000/10)")
    p.add_argument("--accept-token", action="append", default=None, metavar="TOKEN",
                   help="repeatable; a bearer token the moderation APIs accept instead of the key (keyless tests)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every call")
    p.add_argument("--prediction-tps", type=_positive, default=None,
                   help="prediction calls per second before 429 (Azure S0: 10)")
    p.add_argument("--training-tps", type=_positive, default=None,
                   help="training-API calls per second before 429 (Azure S0: 10)")
    p.add_argument("--fault-rate", type=_fraction, default=0.0, help="share of API calls that answer 503")
    p.add_argument("--fault-every", type=_whole, default=None, metavar="N",
                   help="every N-th API call answers 503 (deterministic, for tests; wins over --fault-rate)")
    p.add_argument("--import-drop-images", type=_whole, default=0, metavar="N",
                   help="ImportProject leaves out the last N images and still ends Succeeded (a fault, for tests)")
    p.add_argument("--vnet", action="store_true",
                   help="answer image URIs as relative paths read with GetArtifact, as a resource behind a VNET does")
    p.add_argument("--allow-url-host", action="append", default=None, metavar="HOST",
                   help="host that image URLs may point to (repeatable; default: loopback only)")
    p.add_argument("--no-input-guard", dest="guard_malformed_input", action="store_false",
                   help="answer 500 (not 400) when a request provokes an unexpected error, e.g. to fuzz the service")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServiceConfig(
        data_dir=None if args.in_memory else args.data_dir,
        training_key=args.training_key,
        prediction_key=args.prediction_key,
        latency_ms=args.latency_ms,
        prediction_tps=args.prediction_tps,
        training_tps=args.training_tps,
        fault_rate=args.fault_rate,
        fault_every=args.fault_every,
        moderation_key=args.moderation_key,
        vision_tps=args.vision_tps,
        content_safety_limit=args.content_safety_limit,
        accepted_tokens=tuple(args.accept_token or ()),
        import_drop_images=args.import_drop_images,
        vnet=args.vnet,
        allow_url_hosts=tuple(DEFAULT_ALLOWED_HOSTS) + tuple(args.allow_url_host or ()),
        guard_malformed_input=args.guard_malformed_input,
    )
    app = CustomVisionApp(config)
    try:
        server = make_service_server(args.host, args.port, app)
    except (OSError, SystemExit) as exc:  # werkzeug exits by itself when the port is taken
        app.close()
        reason = exc.strerror if isinstance(exc, OSError) else "address in use or not available"
        print(f"cvops-emulator: cannot listen on {args.host}:{args.port}: {reason}. "
              "Choose another --port (0 picks a free one).", file=sys.stderr)
        return 2

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Local Custom Vision service listening on http://{host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
