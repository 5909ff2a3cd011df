"""cvops pipelines: what an operator or CI runs against Custom Vision (the `cvops` command and the code under it).

Pure modules (spec, plan, batching, gates, sources' parsing) hold the decisions; `service` and the command modules are
thin layers that make the SDK calls through `cvops.retry`.
"""
