"""ONNX export of a sentence-transformers model (:mod:`fieldtune.encoders.onnx` runs the export).

``fieldtune export --onnx OUT`` writes a directory that any fieldtune command
accepts as ``--model``: ``model.onnx`` (tokens -> pooled, normalised sentence
embedding), the tokenizer files, and ``fieldtune-onnx.json`` (prompts,
maximum sequence length, dimension, the model it came from). ``--int8``
quantises the matrix multiplications' weights to int8 per output channel
(onnxruntime dynamic quantisation): per-tensor scales lose too much on
MiniLM (cosine to fp32 ~0.93 measured here), per-channel keeps ~0.99.

Only the module stacks fieldtune trains are exported: a Transformer, mean or
CLS pooling, and an optional Normalize. Anything else raises a clear error
rather than exporting a model that silently embeds differently.

An export never deletes a file it did not write. It is written into a staging
directory first; an earlier export at ``--out`` then has only its own files
replaced (the record lists them under ``files``), so notes a user keeps beside
an export survive a re-export. A folder that is not an earlier export must be
empty, and a new file that would overwrite one of the user's is refused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fieldtune.errors import FieldtuneError, require_extra
from fieldtune.models import BASE_RECORD, embedding_dimension, load_model, resolve_model
from fieldtune.onnx_layout import ONNX_FILE, ONNX_RECORD, is_onnx_export
from fieldtune.training.query_model import route_modules
from fieldtune.workdir import atomic_write

logger = logging.getLogger("fieldtune.export")

SUPPORTED_POOLING = ("mean", "cls")

#: What an export wrote before its record listed its files: the graph, the record and the tokenizer files
#: ``save_pretrained`` writes (for an older export, anything else in the folder is taken to be the user's).
UNLISTED_EXPORT_FILES = frozenset({
    ONNX_FILE, ONNX_RECORD, "model-fp32.onnx", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "spiece.model", "sentencepiece.bpe.model",
    "tokenizer.model", "chat_template.jinja", "chat_template.json",
})
#: At most this many of a folder's names are quoted in an error.
LISTED_NAMES = 8


class ExportError(FieldtuneError):
    """The model cannot be exported (modules other than the supported stack, an occupied output)."""


def _module_stack(model: Any) -> tuple[Any, str, bool, Any]:
    """(transformer, pooling mode, normalises?, final linear map or None), or ExportError for other stacks.

    The final linear map is the bias-free identity-activation ``Dense`` that
    :mod:`fieldtune.rotation` appends after ``Normalize``.
    """
    modules = list(model)
    names = [type(module).__name__ for module in modules]
    supported = "Transformer + Pooling (+ Normalize) (+ a bias-free linear Dense)"
    linear = None
    if names and names[-1] == "Dense":
        dense = modules.pop()
        names.pop()
        activation = type(getattr(dense, "activation_function", None)).__name__
        if dense.linear.bias is not None or activation != "Identity":
            raise ExportError(f"can only export {supported}; this Dense has a bias or a {activation} activation")
        linear = dense.linear
    expected = ["Transformer", "Pooling", "Normalize"][: len(modules)]
    if len(modules) not in (2, 3) or names != expected:
        raise ExportError(f"can only export {supported} models, not {[type(m).__name__ for m in model]}")
    pooling = modules[1].get_config_dict().get("pooling_mode", "mean")
    if pooling not in SUPPORTED_POOLING:
        raise ExportError(f"pooling {pooling!r} is not supported for export (supported: {SUPPORTED_POOLING})")
    return modules[0], pooling, len(modules) == 3, linear


def _tokenizer_of(transformer: Any) -> Any:
    return getattr(transformer, "tokenizer", None) or transformer.processor


class _Pooled:
    """Builds the torch module that the exporter traces (kept lazy: torch imports are slow)."""

    @staticmethod
    def make(backbone: Any, pooling: str, normalize: bool, linear: Any = None) -> Any:
        import torch

        class Pooled(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.backbone = backbone
                self.linear = linear

            def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001
                hidden = self.backbone(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                ).last_hidden_state
                if pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                if normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                if self.linear is not None:
                    pooled = self.linear(pooled)
                return pooled

        return Pooled().eval()


def _names(names: set[str] | list[str]) -> str:
    listed = sorted(names)
    more = f" and {len(listed) - LISTED_NAMES} more" if len(listed) > LISTED_NAMES else ""
    return ", ".join(listed[:LISTED_NAMES]) + more


def _previous_export(out: Path) -> set[str]:
    """The names in ``out`` that an earlier export wrote (none if ``out`` is new or empty).

    Raises :class:`ExportError` for a file, or for a folder that holds
    anything and is not an earlier export, before any work is done.
    """
    if not out.exists():
        return set()
    if not out.is_dir():
        raise ExportError(f"{out}: is a file, not a directory; give --out a new or empty directory")
    present = {entry.name for entry in out.iterdir()}
    if not present:
        return set()
    if not is_onnx_export(out):
        raise ExportError(
            f"{out}: exists and is not an earlier fieldtune ONNX export (it holds {_names(present)}); "
            "choose an empty directory"
        )
    try:
        listed = json.loads((out / ONNX_RECORD).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError) as error:
        raise ExportError(
            f"{out / ONNX_RECORD}: unreadable export record ({error}); choose an empty directory"
        ) from error
    written = set(listed) if isinstance(listed, list) else UNLISTED_EXPORT_FILES
    return present & written


def _replace_export(staging: Path, out: Path, previous: set[str]) -> None:
    """Move the staged export into ``out``, replacing the ``previous`` export's files and nothing else.

    The record in ``out`` first lists the old and the new files together, so
    a run killed halfway leaves a folder that the next export still
    recognises as its own; the new record goes in last.
    """
    new = {entry.name for entry in staging.iterdir()}
    theirs = {entry.name for entry in out.iterdir()} - previous
    clash = new & theirs
    if clash:
        raise ExportError(
            f"{out}: the export would overwrite {_names(clash)}, which an earlier export did not write; "
            "move them away or choose an empty directory"
        )
    interim = json.loads((out / ONNX_RECORD).read_text(encoding="utf-8"))
    interim["files"] = sorted(previous | new)
    with atomic_write(out / ONNX_RECORD) as handle:
        handle.write(json.dumps(interim, indent=2))
    for name in sorted(new - {ONNX_RECORD}):
        if (out / name).is_dir() and not (out / name).is_symlink():
            shutil.rmtree(out / name)
        os.replace(staging / name, out / name)
    for name in sorted(previous - new):
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    os.replace(staging / ONNX_RECORD, out / ONNX_RECORD)
    staging.rmdir()
    if theirs:
        logger.info("kept %s in %s (not written by an export)", _names(theirs), out)


def _publish(staging: Path, out: Path, previous: set[str]) -> None:
    """Put the staged export at ``out``: a rename where ``out`` is new or empty, else file by file."""
    if out.exists() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(staging, out)
    else:
        _replace_export(staging, out, previous)


def quantize_weights_int8(fp32: Path, out: Path) -> None:
    """ONNX Runtime's dynamic int8: the weight matrices per output channel, activations quantised as they come.

    Products of two activations (attention's) stay fp32.
    """
    require_extra("onnxruntime", "onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True,
        op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": True},
    )


def export_onnx(model_spec: str, out: Path, *, int8: bool = False, opset: int = 17, route: str | None = None,
                drop_rotation: bool = False) -> Path:
    """Export ``model_spec`` to ``out`` and return it.

    ``route`` exports one route of a query-side model (``"query"``: its trained query
    encoder) as a plain model; its document route is its base's, exported from the base.

    ``out`` is new, empty, or an earlier export, whose files alone are
    replaced (see the module docstring); anything else fails before the
    model loads.
    """
    out = Path(out)
    previous = _previous_export(out)  # before torch loads: a refused --out answers at once
    import torch

    onnx = require_extra("onnx", "onnx")
    ref = resolve_model(model_spec)
    model = load_model(model_spec, device="cpu")
    transformer, pooling, normalize, linear = _module_stack(route_modules(model, route) if route else model)
    if drop_rotation:
        linear = None
    tokenizer = _tokenizer_of(transformer)
    wrapped = _Pooled.make(transformer.auto_model.float().eval(), pooling, normalize, linear)
    sample = tokenizer(
        ["fieldtune export sample", "a second, longer sample sentence"], padding=True, return_tensors="pt"
    )
    token_types = sample.get("token_type_ids", torch.zeros_like(sample["input_ids"]))
    inputs = (sample["input_ids"], sample["attention_mask"], token_types)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"{out}: its parent folder cannot be created ({error}); choose another --out") from error
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    staging.chmod(0o755)
    try:
        fp32 = staging / ("model-fp32.onnx" if int8 else ONNX_FILE)
        axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                "token_type_ids": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}}
        with torch.no_grad():
            torch.onnx.export(
                wrapped, inputs, str(fp32), input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["embedding"], dynamic_axes=axes, opset_version=opset, dynamo=False,
            )
        onnx.checker.check_model(str(fp32))
        if int8:
            quantize_weights_int8(fp32, staging / ONNX_FILE)
            fp32.unlink()
        tokenizer.save_pretrained(str(staging))
        record = {
            "source": model_spec, "source_location": ref.location, "int8": int8, "opset": opset,
            "pooling": pooling, "normalize": normalize, "final_linear": linear is not None,
            "dimension": embedding_dimension(model),
            "max_seq_length": int(model.max_seq_length), "prompts": dict(model.prompts or {}),
            "default_prompt_name": model.default_prompt_name,
        }
        base_record = Path(ref.location) / BASE_RECORD
        if base_record.is_file():
            record["base_model"] = json.loads(base_record.read_text(encoding="utf-8")).get("base_model")
        record["files"] = sorted([entry.name for entry in staging.iterdir()] + [ONNX_RECORD])
        (staging / ONNX_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
        _publish(staging, out, previous)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("exported %s to %s (%s)", model_spec, out, "int8" if int8 else "fp32")
    return out

