"""One entry point for every in-process model (CVOPS_MODEL, `cvops predict --model`, `cvops evaluate --model`): the
contract is recognised from the files, or stated.

Custom Vision's export carries ``labels.txt`` (functions/exported_model.py); Azure ML AutoML's carries ``labels.json``
(functions/automl_model.py). A file with neither, or with both, is refused with :class:`ModelRefused` naming what was
found, unless the contract is stated (``contract=``). Nothing is guessed: a model fed the other contract's pixels
routes images quietly wrong.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from functions.automl_model import CONTRACT as AUTOML
from functions.automl_model import AutoMLModel
from functions.exported_model import MAX_FILE_BYTES, ExportedModel, ModelRefused

CUSTOM_VISION = "custom-vision"
CONTRACTS = (CUSTOM_VISION, AUTOML)


def _names(source: str | Path | bytes) -> tuple[str, set[str]]:
    """(what to call the source, the base names of the files it holds or has beside it)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return str(path), {p.name for p in path.iterdir()}
        # The names only: a zip's central directory, not the file (up to 513 MiB), which the loader reads once later
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise ModelRefused(f"{path} is {size:,} bytes, above the runner's limit of {MAX_FILE_BYTES:,} for a "
                                   "model file")
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as archive:
                    return str(path), {Path(n).name for n in archive.namelist()}
            return str(path), {p.name for p in path.parent.iterdir()}
        except (OSError, zipfile.BadZipFile) as exc:
            raise ModelRefused(f"cannot read the model file {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    if zipfile.is_zipfile(io.BytesIO(bytes(source))):
        with zipfile.ZipFile(io.BytesIO(bytes(source))) as archive:
            return "<bytes>", {Path(n).name for n in archive.namelist()}
    return "<bytes>", set()


def recognise(source: str | Path | bytes) -> str:
    """Which contract the files follow (ModelRefused naming what was found when neither, or both, fit)."""
    name, found = _names(source)
    has_txt, has_json = "labels.txt" in found, "labels.json" in found
    if has_txt and not has_json:
        return CUSTOM_VISION
    if has_json and not has_txt:
        return AUTOML
    listed = ", ".join(sorted(found)[:10]) or "no files"
    what = "both labels.txt and labels.json" if has_txt else "neither labels.txt nor labels.json"
    raise ModelRefused(f"{name}: {what} ({listed}): a Custom Vision export has model.onnx + labels.txt, an AutoML "
                       f"export model.onnx + labels.json; state the contract ({' or '.join(CONTRACTS)}) if the files "
                       "cannot say")


def load_model(source: str | Path | bytes, *, contract: str | None = None, classification: str | None = None) -> Any:
    """An :class:`ExportedModel` or an :class:`AutoMLModel`. ``classification`` (the policy's or spec's
    ``multiclass``/``multilabel``, any case) picks AutoML's sigmoid over its softmax, and adds the Multiclass check that
    a Custom Vision export's probabilities sum to 1 (its export already outputs probabilities)."""
    multilabel = (classification or "").lower() == "multilabel"
    if contract not in (None, "", *CONTRACTS):
        raise ModelRefused(f"model contract {contract!r} is not one of {', '.join(CONTRACTS)}")
    chosen = contract or recognise(source)
    if chosen == AUTOML:
        return AutoMLModel.load(source, multilabel=multilabel)
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        model = Path(source) / "model.onnx"
        return ExportedModel.load(model, Path(source) / "labels.txt", classification=classification)
    return ExportedModel.load(source, classification=classification)
