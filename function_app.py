"""The cvops Function App (Python v2 programming model): route each new image by its classification.

Functions, one blueprint each in functions/:
- ``route_new_blob``: blob trigger (Event Grid source) on the CVOPS_INCOMING_CONTAINER container;
- ``classify_http``: ``POST /api/classify`` with function-key auth, the same decision as JSON, nothing written;
- ``route_backlog_blob``: queue trigger on CVOPS_BACKLOG_QUEUE for blobs that existed before the app.
Settings are listed in functions/settings.py and local.settings.example.json.
"""

import azure.functions as func

from functions.backlog_queue import bp as backlog_queue
from functions.blob_trigger import bp as blob_trigger
from functions.http_api import bp as http_api

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(blob_trigger)
app.register_functions(http_api)
app.register_functions(backlog_queue)
