"""An encoder's ONNX graph: traced from torch, fused by ONNX Runtime, checked against torch.

:mod:`reranker.serving.onnx_export` writes a reranker's ONNX files with these, and the dense retriever's ONNX
backend (:mod:`reranker.preparation.retrievers.onnx_encoder`) its encoder's graph. The graph is traced by
``torch.onnx.export`` with the model's plain (eager) attention, batch and sequence axes dynamic, then fused by
ONNX Runtime's transformer optimizer (one ``Attention`` node per layer, layer norms joined to their residual
additions, GELU to its bias); a fused graph is kept only where a check against torch passes.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from reranker.model.onnx_backend import OUTPUT_NAME, onnx_session

# Most difference between a float32 graph's output and the torch model's it was traced from; float32
# rounding alone stays orders of magnitude below.
MAX_EXPORT_ERROR = 1e-4
# Above the 2 GB protobuf limit the weights go beside the graph (model.onnx.data).
EXTERNAL_DATA_BYTES = 1_800_000_000


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exporter's progress lines and the tools' warnings (operators of absent packages, advice on
    pre-processing, which fails on these graphs) hidden; errors still raise."""
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)


def trace_graph(
    model: torch.nn.Module,
    features: dict[str, torch.Tensor],
    path: Path,
    large: bool,
    output: str = OUTPUT_NAME,
) -> dict:
    """Write the model's ONNX graph to ``path``, batch and sequence axes dynamic, its output named ``output``;
    returns how it was made. ``model`` is a Hugging Face model or a module with its ``config`` and
    ``set_attn_implementation``.

    The TorchScript exporter traces the model with its plain (eager) attention: that graph is the one
    ONNX Runtime's optimizer recognises and fuses. Inputs are given in the order of ``forward``'s
    parameters (a positional trace binds them by position). Where that exporter is unavailable or fails,
    the dynamo exporter writes the graph instead (correct, but its attention is not fused).
    """
    parameters = list(inspect.signature(model.forward).parameters)
    names = sorted(
        features, key=lambda name: parameters.index(name) if name in parameters else len(parameters)
    )
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    previous = model.config._attn_implementation
    try:
        model.set_attn_implementation("eager")
        with quiet(), torch.no_grad():
            torch.onnx.export(model, tuple(features[name] for name in names), str(path), input_names=names,
                              output_names=[output], dynamic_axes=axes, opset_version=17, dynamo=False,
                              external_data=large)  # fmt: skip
        return {"exporter": "torchscript", "attention": "eager"}
    except Exception as error:  # noqa: BLE001 - any failure of this exporter leaves the dynamo one
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
    finally:
        model.set_attn_implementation(previous)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with quiet(), torch.no_grad():
        program = torch.onnx.export(model, (), kwargs=features, input_names=names, output_names=[output],
                                    dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
                                    dynamo=True, verbose=False)  # fmt: skip
    program.save(str(path), external_data=large)
    return {"exporter": "dynamo", "torchscript_failed": reason}


def fuse_graph(
    model: torch.nn.Module,
    features: dict[str, torch.Tensor],
    path: Path,
    large: bool,
    check: Callable[[torch.nn.Module, dict[str, torch.Tensor], Path], None],
) -> dict:
    """Replace the graph at ``path`` by ONNX Runtime's fused one when that still gives the model's output
    (``check(model, features, path)`` raises otherwise); returns what was fused, or why the unfused graph was
    kept."""
    from onnxruntime.transformers import optimizer

    config = model.config
    # Written under the final name in a folder of its own, so external weights keep their file name.
    scratch = Path(tempfile.mkdtemp(prefix=".fused-", dir=path.parent))
    fused_path = scratch / path.name
    try:
        with quiet():
            fused = optimizer.optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                                             hidden_size=config.hidden_size, opt_level=0)  # fmt: skip
            fused.save_model_to_file(str(fused_path), use_external_data_format=large)
        operators = {name: count for name, count in fused.get_fused_operator_statistics().items() if count}
        check(model, features, fused_path)
        for file in scratch.iterdir():
            file.replace(path.parent / file.name)
    except Exception as error:  # noqa: BLE001 - the unfused graph is correct and kept
        return {"kept": "unfused", "reason": f"{type(error).__name__}: {error}".splitlines()[0][:200]}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"operators": operators}


def graph_difference(
    model: torch.nn.Module, features: dict[str, torch.Tensor], path: Path, output: str
) -> float:
    """The largest difference between the graph's ``output`` and the torch model's (its logits, or the tensor
    it returns) on a batch other than the traced one: three rows, padded to another length."""
    check = {name: torch.cat([value, value[:1]]) for name, value in features.items()}
    check = {name: torch.nn.functional.pad(value, (0, 3)) for name, value in check.items()}
    session = onnx_session(path)
    (got,) = session.run([output], {name: value.numpy() for name, value in check.items()})
    with torch.no_grad():
        expected = model(**check)
    expected = getattr(expected, "logits", expected).numpy()
    return float(abs(got - expected).max())
