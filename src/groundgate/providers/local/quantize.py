"""The int8-compute variant of the shipped MiniLM model, made once from it on this machine.

The shipped ``model.onnx`` stores its weights as int8 but computes in float32: onnxruntime
folds the weights back to float32 when it loads them, and then every call streams 42 MB of
weights through the CPU, whatever the length of the text (a floor of ~3 ms per call here).
Dynamic quantisation (onnxruntime's ``quantize_dynamic``: int8 weights, per output channel,
and int8 activations quantised per call) computes with int8 instructions on a quarter of the
bytes: about twice as fast for a question (bench/cache_latency.py). The price is precision:
vectors move by a cosine of ~0.006 from the float32 ones, so the two variants are different
embedders (their vectors never share an index or a cache entry) and a threshold chosen for one
does not carry over to the other (bench/semantic_cache.py measures each).

Nothing is downloaded: the variant is derived from the installed model file and kept in the
model cache folder (``GROUNDGATE_MODEL_CACHE``, else ``$XDG_CACHE_HOME/groundgate`` or
``~/.cache/groundgate``), named by a digest of the source file, the onnxruntime version and
this recipe, so an upgrade of either makes a new one. Where that folder cannot be written the
variant is made in a temporary folder for this process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger("groundgate.local")

# Bump when the recipe below changes: the file name changes with it.
_RECIPE = "dynamic-int8-per-channel-v1"


def model_cache_dir() -> Path:
    configured = os.environ.get("GROUNDGATE_MODEL_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "groundgate"


def quantized_model(source: Path, cache_dir: Path | None = None) -> Path:
    """The int8-compute variant of ``source``: from the cache folder, else made now (~2 s)."""
    import onnxruntime as ort

    digest = hashlib.sha256()
    with source.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"{ort.__version__}:{_RECIPE}".encode())
    name = f"{source.stem}-int8-{digest.hexdigest()[:16]}.onnx"
    folder = cache_dir or model_cache_dir()
    target = folder / name
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _quantize(source, target)
    except OSError as exc:
        log.warning(
            "model cache %s not writable (%s): quantising into a temporary folder", folder, exc
        )
        target = Path(tempfile.mkdtemp(prefix="groundgate-model-")) / name
        _quantize(source, target)
    return target


def _quantize(source: Path, target: Path) -> None:
    """Write the variant to ``target`` atomically: a reader never sees half a file."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantize-") as work:
        # First fold the stored int8 weights back to float32 constants (what onnxruntime does
        # on load anyway), so that the quantiser sees plain float32 MatMuls.
        folded = Path(work) / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        staged = Path(work) / "model.onnx"
        # The quantiser advises pre-processing (shape inference) on the root logger; for this
        # graph it changes nothing, and a gateway's log should not carry the advice.
        advice = _DropAdvice()
        logging.getLogger().addFilter(advice)
        try:
            quantize_dynamic(folded, staged, weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.getLogger().removeFilter(advice)
        os.replace(staged, target)


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing")


if __name__ == "__main__":  # `make install`: derive it once, before any request waits for it
    from groundgate.providers.local.embedder import find_model_path

    print(quantized_model(find_model_path()))
