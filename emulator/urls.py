"""Routes: every path and method of the Training (v3.3, v3.4-preview) and Prediction (v3.0, v3.1) specs, and the two
moderation operations served on the same endpoint (Computer Vision 3.2 AnalyzeImage, Content Safety AnalyzeImage).

Endpoint names are the spec's classic operation names (e.g. "CreateImagesFromData"); `responses.py` has one handler
per name. Operations the local service does not implement still have routes, so they answer a clear
BadRequestNotSupported instead of a bare 404.
"""

from __future__ import annotations

from werkzeug.routing import Map, Rule

TRAINING_VERSIONS = ("v3.3", "v3.4-preview")
PREDICTION_VERSIONS = ("v3.0", "v3.1")

T = "/customvision/<any('v3.3', 'v3.4-preview'):version>/training"
P = "/customvision/<any('v3.0', 'v3.1'):version>/prediction"

# (path under the API base, method, operation)
TRAINING_ROUTES: list[tuple[str, str, str]] = [
    ("/domains", "GET", "GetDomains"),
    ("/domains/<domainId>", "GET", "GetDomain"),
    ("/projects", "GET", "GetProjects"),
    ("/projects", "POST", "CreateProject"),
    ("/projects/import", "POST", "ImportProject"),
    ("/projects/<projectId>", "GET", "GetProject"),
    ("/projects/<projectId>", "DELETE", "DeleteProject"),
    ("/projects/<projectId>", "PATCH", "UpdateProject"),
    ("/projects/<projectId>/artifacts", "GET", "GetArtifact"),
    ("/projects/<projectId>/export", "GET", "ExportProject"),
    ("/projects/<projectId>/images", "GET", "GetImages"),
    ("/projects/<projectId>/images", "POST", "CreateImagesFromData"),
    ("/projects/<projectId>/images", "DELETE", "DeleteImages"),
    ("/projects/<projectId>/images/<imageId>/regionproposals", "POST", "GetImageRegionProposals"),
    ("/projects/<projectId>/images/count", "GET", "GetImageCount"),
    ("/projects/<projectId>/images/files", "POST", "CreateImagesFromFiles"),
    ("/projects/<projectId>/images/id", "GET", "GetImagesByIds"),
    ("/projects/<projectId>/images/metadata", "POST", "UpdateImageMetadata"),
    ("/projects/<projectId>/images/predictions", "POST", "CreateImagesFromPredictions"),
    ("/projects/<projectId>/images/regions", "POST", "CreateImageRegions"),
    ("/projects/<projectId>/images/regions", "DELETE", "DeleteImageRegions"),
    ("/projects/<projectId>/images/suggested", "POST", "QuerySuggestedImages"),
    ("/projects/<projectId>/images/suggested/count", "POST", "QuerySuggestedImageCount"),
    ("/projects/<projectId>/images/tagged", "GET", "GetTaggedImages"),
    ("/projects/<projectId>/images/tagged/count", "GET", "GetTaggedImageCount"),
    ("/projects/<projectId>/images/tags", "POST", "CreateImageTags"),
    ("/projects/<projectId>/images/tags", "DELETE", "DeleteImageTags"),
    ("/projects/<projectId>/images/untagged", "GET", "GetUntaggedImages"),
    ("/projects/<projectId>/images/untagged/count", "GET", "GetUntaggedImageCount"),
    ("/projects/<projectId>/images/urls", "POST", "CreateImagesFromUrls"),
    ("/projects/<projectId>/iterations", "GET", "GetIterations"),
    ("/projects/<projectId>/iterations/<iterationId>", "GET", "GetIteration"),
    ("/projects/<projectId>/iterations/<iterationId>", "DELETE", "DeleteIteration"),
    ("/projects/<projectId>/iterations/<iterationId>", "PATCH", "UpdateIteration"),
    ("/projects/<projectId>/iterations/<iterationId>/export", "GET", "GetExports"),
    ("/projects/<projectId>/iterations/<iterationId>/export", "POST", "ExportIteration"),
    ("/projects/<projectId>/iterations/<iterationId>/performance", "GET", "GetIterationPerformance"),
    ("/projects/<projectId>/iterations/<iterationId>/performance/images", "GET", "GetImagePerformances"),
    ("/projects/<projectId>/iterations/<iterationId>/performance/images/count", "GET", "GetImagePerformanceCount"),
    ("/projects/<projectId>/iterations/<iterationId>/publish", "POST", "PublishIteration"),
    ("/projects/<projectId>/iterations/<iterationId>/publish", "DELETE", "UnpublishIteration"),
    ("/projects/<projectId>/predictions", "DELETE", "DeletePrediction"),
    ("/projects/<projectId>/predictions/query", "POST", "QueryPredictions"),
    ("/projects/<projectId>/quicktest/image", "POST", "QuickTestImage"),
    ("/projects/<projectId>/quicktest/url", "POST", "QuickTestImageUrl"),
    ("/projects/<projectId>/tags", "GET", "GetTags"),
    ("/projects/<projectId>/tags", "POST", "CreateTag"),
    ("/projects/<projectId>/tags/<tagId>", "GET", "GetTag"),
    ("/projects/<projectId>/tags/<tagId>", "DELETE", "DeleteTag"),
    ("/projects/<projectId>/tags/<tagId>", "PATCH", "UpdateTag"),
    ("/projects/<projectId>/tagsandregions/suggestions", "POST", "SuggestTagsAndRegions"),
    ("/projects/<projectId>/train", "POST", "TrainProject"),
]

PREDICTION_ROUTES: list[tuple[str, str, str]] = [
    ("/<projectId>/classify/iterations/<publishedName>/image", "POST", "ClassifyImage"),
    ("/<projectId>/classify/iterations/<publishedName>/image/nostore", "POST", "ClassifyImageWithNoStore"),
    ("/<projectId>/classify/iterations/<publishedName>/url", "POST", "ClassifyImageUrl"),
    ("/<projectId>/classify/iterations/<publishedName>/url/nostore", "POST", "ClassifyImageUrlWithNoStore"),
    ("/<projectId>/detect/iterations/<publishedName>/image", "POST", "DetectImage"),
    ("/<projectId>/detect/iterations/<publishedName>/image/nostore", "POST", "DetectImageWithNoStore"),
    ("/<projectId>/detect/iterations/<publishedName>/url", "POST", "DetectImageUrl"),
    ("/<projectId>/detect/iterations/<publishedName>/url/nostore", "POST", "DetectImageUrlWithNoStore"),
]

# The moderation APIs a multi-service Azure AI resource serves beside Custom Vision, under the same endpoint and key:
# Computer Vision 3.2's analyze (only visualFeatures=Adult is emulated) and Content Safety's image:analyze (api-version
# in the query). Any other path under /vision or /contentsafety answers the gateway's 404 in their nested shape.
MODERATION_ROUTES: list[tuple[str, str, str]] = [
    ("/vision/v3.2/analyze", "vision", "AnalyzeImage"),
    ("/contentsafety/image:analyze", "contentsafety", "ImageOperations_AnalyzeImage"),
]
MODERATION_PREFIXES = {"/vision/": "vision", "/contentsafety/": "contentsafety"}

# Stored images, served like the blob URLs Azure hands out (readable without a key, as a SAS URL is).
IMAGE_ROUTE = "/customvision/local/images/<projectId>/<imageId>/<any('original', 'resized', 'thumbnail'):kind>"

# Export packages (GetExports' downloadUri): readable without a key, as Azure's SAS URIs are; the random token in the
# path is what makes the address unguessable.
EXPORT_ROUTE = "/customvision/local/exports/<token>/model.zip"

# Project exports (ExportProject's token names one): readable without a key by the resource importing it; the random
# part of the address is the credential.
PROJECT_EXPORT_ROUTE = "/customvision/local/projectexports/<secret>"


def build_url_map() -> Map:
    rules = [Rule(T + path, methods=[method], endpoint=f"training:{op}") for path, method, op in TRAINING_ROUTES]
    rules += [Rule(P + path, methods=[method], endpoint=f"prediction:{op}") for path, method, op in PREDICTION_ROUTES]
    rules += [Rule(path, methods=["POST"], endpoint=f"{api}:{op}") for path, api, op in MODERATION_ROUTES]
    rules.append(Rule(IMAGE_ROUTE, methods=["GET"], endpoint="blob:GetStoredImage"))
    rules.append(Rule(EXPORT_ROUTE, methods=["GET"], endpoint="blob:GetExportPackage"))
    rules.append(Rule(PROJECT_EXPORT_ROUTE, methods=["GET"], endpoint="blob:GetProjectPackage"))
    return Map(rules, strict_slashes=False, merge_slashes=False)
