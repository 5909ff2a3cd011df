"""A local Custom Vision service that speaks the official REST API and really trains.

It answers the Training API (v3.4-preview and v3.3) and the Prediction API (v3.1 and v3.0) on one port, so the official
SDK, the pipelines and the Function App talk to it exactly as they talk to Azure: only the endpoint and keys change.
"""

# Fixed, documented keys so a fresh checkout can run the demo with no configuration. They are not secrets: the local
# service guards nothing of value, and Azure keys never look like these.
DEFAULT_TRAINING_KEY = "local-training-key"
DEFAULT_PREDICTION_KEY = "local-prediction-key"

__all__ = ["DEFAULT_PREDICTION_KEY", "DEFAULT_TRAINING_KEY"]
