"""KV cache size from a HuggingFace config.json, and the transfer time it predicts over links.

Pure arithmetic: no Dagster, no I/O beyond reading the config file. The prediction is a
yardstick for the measured NIXL transfer, never a substitute for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from pdpipeline.errors import PdPipelineError


class KVConfigError(PdPipelineError, ValueError):
    """A model config lacks a field the KV arithmetic needs, or a KV dtype is unknown."""


# Model dtypes ("auto" KV dtype) and their sizes. A float32 config counts 4 bytes here; note that
# vLLM serves float32 checkpoints in 16-bit by default, so pass an explicit kv_dtype to match it.
_MODEL_DTYPE_BYTES: dict[str, int] = {"bfloat16": 2, "float16": 2, "float32": 4}

# Explicit --kv-cache-dtype values, named as vLLM names them.
_KV_DTYPE_BYTES: dict[str, int] = {
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "bfloat16": 2,
    "float16": 2,
    "half": 2,
    "float32": 4,
}
_DTYPE_ALIASES: dict[str, str] = {"half": "float16"}

# Gemma-2 alternates sliding and full layers in code, and its hub configs say nothing about it.
_IMPLICIT_SLIDING_PATTERN: dict[str, int] = {"gemma2": 2}


@dataclass(frozen=True)
class KVLayout:
    """What one token costs in KV cache, per layer and over the model."""

    architecture: str  # "mha", "gqa", "mqa" or "mla"
    num_layers: int
    bytes_per_element: float
    elements_per_token_per_layer: int  # K+V: 2*kv_heads*head_dim; MLA: kv_lora_rank+rope dim
    sliding_window: int | None
    sliding_layers: int  # how many of num_layers keep only the last sliding_window tokens
    dtype: str  # the KV dtype actually counted, e.g. "bfloat16", "fp8"

    @property
    def bytes_per_token_per_layer(self) -> float:
        """Bytes one token occupies in one layer."""
        return self.elements_per_token_per_layer * self.bytes_per_element

    @property
    def bytes_per_token(self) -> int:
        """Bytes per token over all layers, as if every layer kept every token."""
        return round(self.bytes_per_token_per_layer * self.num_layers)

    def bytes_for(self, tokens: int) -> int:
        """Bytes of KV cache for a prompt of `tokens` tokens, sliding layers capped at the window.

        Counts exact tokens; vLLM allocates and moves whole blocks (16 tokens by default), so a
        measured transfer can exceed this by up to one block per layer.
        """
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        full_layers = self.num_layers - self.sliding_layers
        windowed = tokens if self.sliding_window is None else min(tokens, self.sliding_window)
        token_layers = full_layers * tokens + self.sliding_layers * windowed
        return round(token_layers * self.bytes_per_token_per_layer)


def load_config(path: str | PathLike[str]) -> dict[str, Any]:
    """Read a model's config.json, given the file or the model directory holding it."""
    file = Path(path)
    if file.is_dir():
        file = file / "config.json"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KVConfigError(f"model config not found: {file}") from None
    except OSError as exc:
        raise KVConfigError(f"cannot read model config {file}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KVConfigError(f"model config {file} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise KVConfigError(f"model config {file} does not hold a JSON object")
    return data


def kv_layout(config: Mapping[str, Any], kv_dtype: str = "auto") -> KVLayout:
    """The KV layout a model config implies, with `kv_dtype` as vLLM's --kv-cache-dtype."""
    # Multimodal configs nest the language model; its KV cache is the one that moves.
    nested = config.get("text_config")
    text: Mapping[str, Any] = nested if isinstance(nested, Mapping) else config
    where = "text_config" if text is not config else "model config"

    num_layers = _positive_int(text, "num_hidden_layers", where)
    dtype, bytes_per_element = _kv_dtype(config, text, kv_dtype)

    if text.get("kv_lora_rank") is not None:
        # MLA caches one compressed latent plus the shared RoPE key: no separate K and V, no heads.
        architecture = "mla"
        elements = _positive_int(text, "kv_lora_rank", where) + _positive_int(
            text, "qk_rope_head_dim", where
        )
    else:
        heads = _positive_int(text, "num_attention_heads", where)
        kv_heads = _kv_heads(text, heads, where)
        if text.get("head_dim") is not None:
            head_dim = _positive_int(text, "head_dim", where)
        else:
            head_dim = _positive_int(text, "hidden_size", where) // heads
        elements = 2 * kv_heads * head_dim
        if kv_heads == heads:
            architecture = "mha"
        elif kv_heads == 1:
            architecture = "mqa"
        else:
            architecture = "gqa"

    window, sliding_layers = _sliding(text, num_layers, where)
    return KVLayout(
        architecture=architecture,
        num_layers=num_layers,
        bytes_per_element=float(bytes_per_element),
        elements_per_token_per_layer=elements,
        sliding_window=window,
        sliding_layers=sliding_layers,
        dtype=dtype,
    )


def _positive_int(cfg: Mapping[str, Any], key: str, where: str) -> int:
    value = cfg.get(key)
    if value is None:
        raise KVConfigError(f"{where} has no {key!r}")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise KVConfigError(f"{where} field {key!r} must be a positive integer, got {value!r}")
    return value


def _kv_heads(text: Mapping[str, Any], heads: int, where: str) -> int:
    if text.get("num_key_value_heads") is not None:
        return _positive_int(text, "num_key_value_heads", where)
    # Falcon-style configs say multi_query / num_kv_heads instead; counting them as MHA would
    # overstate the cache up to 71x, so refuse rather than guess.
    for key in ("multi_query", "num_kv_heads"):
        if key in text:
            raise KVConfigError(
                f"{where} sets {key!r} but not 'num_key_value_heads'; add num_key_value_heads"
            )
    return heads


def _kv_dtype(config: Mapping[str, Any], text: Mapping[str, Any], kv_dtype: str) -> tuple[str, int]:
    if kv_dtype != "auto":
        if kv_dtype not in _KV_DTYPE_BYTES:
            known = ", ".join(["auto", *_KV_DTYPE_BYTES])
            raise KVConfigError(f"unknown kv dtype {kv_dtype!r} (known: {known})")
        return _DTYPE_ALIASES.get(kv_dtype, kv_dtype), _KV_DTYPE_BYTES[kv_dtype]
    # transformers v5 renamed torch_dtype to dtype; multimodal configs often keep it at the top.
    for cfg in (text, config):
        for key in ("torch_dtype", "dtype"):
            name = cfg.get(key)
            if name is None:
                continue
            name = str(name).removeprefix("torch.")
            if name not in _MODEL_DTYPE_BYTES:
                raise KVConfigError(
                    f"model config field {key!r} is {name!r}, not one of "
                    f"{', '.join(_MODEL_DTYPE_BYTES)}; pass an explicit kv dtype"
                )
            return name, _MODEL_DTYPE_BYTES[name]
    raise KVConfigError("model config has no 'torch_dtype' (or 'dtype'); pass an explicit kv dtype")


def _sliding(text: Mapping[str, Any], num_layers: int, where: str) -> tuple[int | None, int]:
    """The window and how many layers use it.

    Deliberately modest, in this order:
    - no `sliding_window`, or `use_sliding_window: false` (Qwen2 style): no sliding layers;
    - `layer_types` (Gemma-3, gpt-oss): count the "sliding_attention" entries;
    - `sliding_window_pattern` N (Gemma-3, Cohere2): every Nth layer full, the rest sliding;
    - model_type gemma2: alternate layers (the pattern is in Gemma-2's code, not its config);
    - otherwise (Mistral-7B-v0.1 style): every layer slides.
    Not modelled: Qwen2's `max_window_layers` with the window switched on (every layer is
    counted as sliding) and chunked attention (Llama-4's `attention_chunk_size`).
    """
    if text.get("sliding_window") is None or text.get("use_sliding_window") is False:
        return None, 0
    window = _positive_int(text, "sliding_window", where)
    layer_types = text.get("layer_types")
    pattern = text.get("sliding_window_pattern")
    if layer_types is not None:
        if not isinstance(layer_types, list) or len(layer_types) != num_layers:
            raise KVConfigError(
                f"{where} field 'layer_types' must list one entry per layer ({num_layers})"
            )
        sliding = sum(1 for kind in layer_types if kind == "sliding_attention")
    elif pattern is not None:
        pattern = _positive_int(text, "sliding_window_pattern", where)
        sliding = num_layers - num_layers // pattern
    elif text.get("model_type") in _IMPLICIT_SLIDING_PATTERN:
        sliding = num_layers - num_layers // _IMPLICIT_SLIDING_PATTERN[text["model_type"]]
    else:
        sliding = num_layers
    return (window, sliding) if sliding else (None, 0)


@dataclass(frozen=True)
class Link:
    """A network link and the fraction of its nominal rate a bulk transfer is assumed to get."""

    name: str
    gbit_per_s: float  # nominal, per direction
    efficiency: float  # assumed achievable fraction of nominal, 0..1

    @property
    def bytes_per_s(self) -> float:
        """Assumed achievable payload rate."""
        return self.gbit_per_s * 1e9 / 8 * self.efficiency


# Efficiencies are assumptions for a prediction, not measurements: ~0.9 of line rate is what a
# tuned bulk TCP or RDMA stream usually reaches after framing overhead; NVLink is put lower
# (0.8) since NIXL moves many per-layer blocks rather than one large copy. The measured NIXL
# rate is the truth; e.g. a 100 Gb RoCE link without GPUDirect RDMA has shown ~4 Gb/s from GPU
# memory.
LINK_CATALOGUE: tuple[Link, ...] = (
    Link("10GbE TCP", 10.0, 0.9),
    Link("25GbE TCP", 25.0, 0.9),
    Link("100Gb RoCE", 100.0, 0.9),
    Link("200Gb RoCE", 200.0, 0.9),
    Link("400Gb RoCE", 400.0, 0.9),
    Link("NVLink4 (H100, 450 GB/s per direction)", 450.0 * 8, 0.8),
)


def predicted_transfer_seconds(nbytes: int, link: Link) -> float:
    """Seconds to move `nbytes` at the link's assumed rate: bandwidth only, no handshake."""
    return nbytes / link.bytes_per_s


def kv_rows(
    layout: KVLayout, tokens: Sequence[int], links: Iterable[Link] = LINK_CATALOGUE
) -> list[dict[str, Any]]:
    """One row per (prompt length, link) with the KV bytes and the predicted transfer time."""
    links = tuple(links)
    rows: list[dict[str, Any]] = []
    for n in tokens:
        nbytes = layout.bytes_for(n)
        for link in links:
            rows.append(
                {
                    "tokens": n,
                    "bytes": nbytes,
                    "link": link.name,
                    "link_gbit_per_s": link.gbit_per_s,
                    "predicted_seconds": predicted_transfer_seconds(nbytes, link),
                }
            )
    return rows


def kv_cache_json(layout: KVLayout, tokens: Sequence[int]) -> dict[str, Any]:
    """The `pdpipeline kv-cache --json` document: bytes per token and bytes per prompt length."""
    return {
        "bytes_per_token": layout.bytes_per_token,
        "rows": [{"tokens": n, "bytes": layout.bytes_for(n)} for n in tokens],
    }


def format_table(layout: KVLayout, tokens: Sequence[int]) -> str:
    """Aligned text: bytes and MiB per prompt length, and predicted time over each link."""
    sizes = [layout.bytes_for(n) for n in tokens]
    labels = ["tokens", "bytes", "MiB"] + [
        f"{link.name} @ {link.efficiency:.0%}" for link in LINK_CATALOGUE
    ]
    cells = [
        [str(n) for n in tokens],
        [str(b) for b in sizes],
        [f"{b / 2**20:.2f}" for b in sizes],
        *[
            [_format_seconds(predicted_transfer_seconds(b, link)) for b in sizes]
            for link in LINK_CATALOGUE
        ],
    ]
    label_width = max(len(label) for label in labels)
    widths = [max(len(row[i]) for row in cells) for i in range(len(sizes))]
    lines = [_summary(layout), ""]
    for label, row in zip(labels, cells, strict=True):
        values = "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
        lines.append(f"{label.ljust(label_width)}  {values}".rstrip())
    lines.append("")
    lines.append("Predicted times assume the link efficiencies shown; measure the real transfer.")
    return "\n".join(lines)


def _summary(layout: KVLayout) -> str:
    text = (
        f"{layout.architecture}, {layout.num_layers} layers, "
        f"{layout.elements_per_token_per_layer} elements/token/layer, {layout.dtype} "
        f"({layout.bytes_per_element:g} B/element): {layout.bytes_per_token} bytes/token"
    )
    if layout.sliding_window is not None:
        text += (
            f"; {layout.sliding_layers} of {layout.num_layers} layers keep at most "
            f"{layout.sliding_window} tokens"
        )
    return text


def _format_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"
