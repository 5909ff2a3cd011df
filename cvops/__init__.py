"""cvops: the shared base layer of the pipelines and the Function App (clients, errors, retry, redaction).

It imports nothing else of the project (tests/test_layers.py), so the Function App ships it whole.
"""
