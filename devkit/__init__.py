"""devkit: what only a developer's machine runs: the sample scenes, the launcher for the local services, the demo.

Why a package of its own: `cvops/` is the shared base layer the Function App ships, and this code needs numpy and the
local Custom Vision service, which the app never installs. Nothing here is zipped into the Function App
(infra/deploy.sh leaves it out); bench/ and tests/ import it freely.
"""
