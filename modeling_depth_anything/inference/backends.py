"""Engines behind `DepthEstimator.forward`: eager PyTorch, `torch.compile` (inductor) and ONNX Runtime.

Only the model call changes between backends; pre- and post-processing stay `DepthEstimator`'s one path, so every
backend returns the same predictions up to its arithmetic (tests/test_backend.py states the tolerances).

- `"torch"` (default): the fast path as `prepare_model` sets it up, run eagerly.
- `"compile"`: `torch.compile` of that model with inductor *freezing* (weights become constants: linear and
  convolution weights are prepacked for oneDNN, LayerNorm/GELU/softmax fuse into generated kernels), one graph per
  input shape (`dynamic=False`). The first call per (batch, height, width) compiles (about 30 CPU-seconds for V2-S);
  past torch._dynamo's recompile limit (8 shapes by default) new shapes run eagerly, so it suits a stream of
  same-sized inputs (video frames, a resized data set) more than a folder of photos of every size.
- `"onnxruntime"`: float32 ONNX graph (`export.export_onnx`), one per input size (height and width are fixed at
  export; the batch is dynamic), sessions kept per size in memory and the files cached under
  `$HF_HOME/depth_anything/onnx/<model key>/HEIGHTxWIDTH.onnx`, never next to the user's model.

Which one is fastest depends on the CPU; `eval/speed.py --quick` measures all three on the machine at hand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "compile", "onnxruntime")
# the `--backend` help of `depth-anything predict` and `evaluate`
BACKEND_HELP = (
    "engine for the model call: torch (eager, default), compile (torch.compile, inductor freezing: a slow first call "
    "per input size), onnxruntime (CPU, float32; .onnx cached per input size under $HF_HOME/depth_anything/onnx). "
    "eval/speed.py --quick measures which is fastest here"
)
ONNX_OPSET = 18


def check_backend(backend: str) -> str:
    """`backend` if it is one of `BACKENDS`; `ValueError` quoting it otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """`torch.compile` for inference with inductor freezing, one static graph per input shape.

    Freezing only applies under `torch.no_grad`/`torch.inference_mode` (as `DepthEstimator.forward` runs) and assumes
    the weights no longer change. Measured at 518x518, batch 1, one core, V2-S, bf16 on an AVX-512-bf16 Zen 4
    (`eval/speed.py --quick --threads 1 --clock cpu`, two runs): eager 0.77-0.78 s, frozen 0.73 s = 2.05-2.15x the
    built-in; `mode="max-autotune"` was no faster (0.77 s best) and compiled longer. fp32 under AVX2 caps: 1.05-1.07x.
    """
    import torch._inductor.config as inductor_config

    compiled = torch.compile(model, dynamic=False)
    compiled_forward = compiled.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        # Dynamo reads the freezing flag while tracing (parameters become constants), before inductor runs, so
        # `torch.compile(options={"freezing": True})` does not freeze (measured: aten::addmm stays; with this,
        # mkldnn::_linear_pointwise). Patched per call rather than globally: other compiled models keep theirs.
        with inductor_config.patch(freezing=True):
            return compiled_forward(*args, **kwargs)

    compiled.forward = forward
    return compiled


def import_onnxruntime() -> Any:
    """The `onnxruntime` module, or `ImportError` saying how to install it (it is the optional `[export]` extra)."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            "the onnxruntime backend needs ONNX Runtime: pip install 'depth-anything-hf[export]' "
            f"(onnx, onnxruntime, onnxscript) ({error})"
        ) from error
    return onnxruntime


def default_onnx_cache() -> Path:
    """`$HF_HOME/depth_anything/onnx` (huggingface_hub's cache root; `~/.cache/huggingface` by default)."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "depth_anything" / "onnx"


def model_cache_key(name_or_path: str | os.PathLike, model: torch.nn.Module) -> str:
    """A folder name that changes whenever the exported graph would: the model's location, its weights files (size
    and modification time) or Hub revision, and the torch, onnx opset and package versions that write the graph."""
    from .. import __version__ as package_version

    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    identity: dict[str, Any] = {"torch": torch.__version__, "opset": ONNX_OPSET, "package": package_version}
    if path.is_dir():
        identity["path"] = str(path.resolve())
        identity["files"] = sorted(
            (item.name, item.stat().st_size, item.stat().st_mtime_ns)
            for item in path.iterdir()
            if item.is_file() and item.suffix in (".json", ".safetensors", ".bin")
        )
    else:  # a Hub id: the snapshot's revision names the weights
        identity["hub"] = name
        identity["revision"] = getattr(getattr(model, "config", None), "_commit_hash", None)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    label = "".join(char if char.isalnum() or char in "-_." else "_" for char in path.name or name)[:40]
    return f"{label}-{digest}"


class OnnxRuntimeEngine:
    """Runs a Depth Anything model under ONNX Runtime (CPU): `engine(pixel_values) -> predicted_depth`.

    Args:
        model: a `DepthAnythingForDepthEstimation` (exported in float32; kept to export new input sizes).
        cache_folder (`Path`, *optional*): where the .onnx files of this model go (one per HEIGHTxWIDTH); `None`
            exports to a temporary folder that is removed once the session holds the graph.
        threads (`int`, *optional*): ONNX Runtime's intra-op threads; defaults to `torch.get_num_threads()`, the
            cores the torch backend would use.
    """

    def __init__(self, model: torch.nn.Module, cache_folder: Path | None = None, threads: int | None = None) -> None:
        self.onnxruntime = import_onnxruntime()
        if not hasattr(getattr(model, "backbone", None), "embeddings"):
            raise ValueError(
                f"the onnxruntime backend exports Depth Anything models only, got {type(model).__name__}; "
                "use backend 'torch' or 'compile'"
            )
        self.model = model
        self.cache_folder = cache_folder
        self.threads = threads or torch.get_num_threads()
        self.sessions: dict[tuple[int, int], Any] = {}

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(batch, 3, height, width) normalised pixels -> (batch, height, width) float32 depth (CPU)."""
        height, width = pixel_values.shape[-2:]
        session = self.session(int(height), int(width))
        (output,) = session.run(["predicted_depth"], {"pixel_values": pixel_values.float().cpu().numpy()})
        return torch.from_numpy(output)

    def _options(self) -> Any:
        options = self.onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1  # one graph at a time: the intra-op threads are all the cores it may use
        options.graph_optimization_level = self.onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        return options

    def _open(self, path: Path) -> Any:
        return self.onnxruntime.InferenceSession(os.fspath(path), self._options(), providers=["CPUExecutionProvider"])

    def session(self, height: int, width: int) -> Any:
        """The session for one input size: from memory, else the cached file, else a fresh export."""
        if (height, width) in self.sessions:
            return self.sessions[height, width]
        if self.cache_folder is None:
            with tempfile.TemporaryDirectory(prefix="depth_anything_onnx_") as folder:
                session = self._export_and_open(Path(folder) / f"{height}x{width}.onnx", height, width)
        else:
            path = self.cache_folder / f"{height}x{width}.onnx"
            session = None
            if path.is_file():
                try:
                    session = self._open(path)
                    logger.info("onnxruntime: %s from the cache", path)
                except Exception as error:  # onnxruntime raises its own exception types for a damaged file
                    logger.warning("%s: cannot be loaded (%s); exporting it again", path, error)
            if session is None:
                session = self._export_and_open(path, height, width)
        self.sessions[height, width] = session
        return session

    def _export_and_open(self, path: Path, height: int, width: int) -> Any:
        """Export to a temporary name beside `path` and rename it: a killed export never leaves a partial file."""
        from ..export import export_onnx

        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.onnx")
        try:
            report = export_onnx(self.model, partial, height=height, width=width, opset=ONNX_OPSET, check=False)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        logger.info("onnxruntime: exported %dx%d in %.1f s to %s", height, width, report["export_seconds"], path)
        return self._open(path)
