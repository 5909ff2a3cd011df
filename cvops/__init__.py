"""cvops: shared layer for the pipelines, the Function App and the local services (clients, retry, settings, samples)."""
