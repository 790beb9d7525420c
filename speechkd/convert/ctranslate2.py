"""Read a CTranslate2 Whisper `model.bin` and turn it into a transformers Whisper checkpoint."""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: None}  # 5 = bf16


class ConversionError(RuntimeError):
    """A CTranslate2 model could not be converted faithfully."""


@dataclass
class CT2Model:
    """The variables of a CTranslate2 model file: tensors, scalar flags and aliases."""

    spec: str
    revision: int
    tensors: dict[str, np.ndarray]
    scalars: dict[str, np.ndarray]
    aliases: dict[str, str]


def _read(stream: io.BufferedIOBase, fmt: str) -> tuple:
    size = struct.calcsize("<" + fmt)
    data = stream.read(size)
    if len(data) != size:
        raise ConversionError("model.bin ended early (truncated file?)")
    return struct.unpack("<" + fmt, data)


def _read_str(stream: io.BufferedIOBase) -> str:
    (length,) = _read(stream, "H")
    return stream.read(length)[:-1].decode("utf-8")


def _read_array(stream: io.BufferedIOBase, name: str) -> np.ndarray:
    (rank,) = _read(stream, "B")
    dims = _read(stream, "I" * rank)
    dtype_id, nbytes = _read(stream, "BI")
    raw = stream.read(nbytes)
    if len(raw) != nbytes:
        raise ConversionError(f"model.bin ended inside variable {name!r} (truncated file?)")
    if dtype_id == 5:  # bf16: widen to f32 through the high half of the bits
        array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    elif dtype_id in _DTYPES:
        array = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
    else:
        raise ConversionError(f"variable {name!r} has unknown dtype id {dtype_id}")
    return array.reshape(dims)


def read_ct2_model(parts: Iterable[Path]) -> CT2Model:
    """Parse a CTranslate2 `model.bin`, given as one path or as split parts to concatenate in order."""
    stream = io.BytesIO(b"".join(Path(p).read_bytes() for p in parts))
    (version,) = _read(stream, "I")
    if version < 5:
        raise ConversionError(f"unsupported CTranslate2 model version {version} (need 5 or later)")
    spec = _read_str(stream)
    (revision,) = _read(stream, "I")
    (count,) = _read(stream, "I")
    tensors, scalars = {}, {}
    for _ in range(count):
        name = _read_str(stream)
        array = _read_array(stream, name)
        (scalars if array.ndim == 0 else tensors)[name] = array
    aliases = {}
    (n_aliases,) = _read(stream, "I")
    for _ in range(n_aliases):
        alias = _read_str(stream)
        aliases[alias] = _read_str(stream)
    if spec != "WhisperSpec":
        raise ConversionError(f"expected a WhisperSpec model, found {spec!r}")
    return CT2Model(spec, revision, tensors, scalars, aliases)


def count_layers(model: CT2Model, side: str) -> int:
    """Number of `layer_i` blocks on the encoder or decoder side."""
    pattern = re.compile(rf"^{side}/layer_(\d+)/")
    found = {int(m.group(1)) for name in model.tensors if (m := pattern.match(name))}
    return max(found) + 1 if found else 0


def ct2_to_state_dict(model: CT2Model) -> dict[str, torch.Tensor]:
    """Map every CTranslate2 tensor onto transformers' WhisperForConditionalGeneration names.

    Fails on any tensor left unmapped, so a new writer layout can never produce a silently broken model.
    """
    src = model.tensors
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}

    def take(name: str) -> np.ndarray:
        if name not in src:
            raise ConversionError(f"model.bin lacks the expected tensor {name!r}")
        used.add(name)
        return src[name]

    def put(name: str, array: np.ndarray) -> None:
        out[name] = torch.from_numpy(np.ascontiguousarray(array).astype(np.float32))

    def linear(ct2: str, hf: str) -> None:
        put(f"{hf}.weight", take(f"{ct2}/weight"))
        put(f"{hf}.bias", take(f"{ct2}/bias"))

    def norm(ct2: str, hf: str) -> None:
        put(f"{hf}.weight", take(f"{ct2}/gamma"))
        put(f"{hf}.bias", take(f"{ct2}/beta"))

    def self_attention(ct2: str, hf: str) -> None:
        weight, bias = take(f"{ct2}/linear_0/weight"), take(f"{ct2}/linear_0/bias")
        q_w, k_w, v_w = np.split(weight, 3)
        q_b, k_b, v_b = np.split(bias, 3)
        if np.any(k_b != 0):
            raise ConversionError(f"{ct2}: Whisper's key projection has no bias, but the file has one")
        put(f"{hf}.q_proj.weight", q_w)
        put(f"{hf}.q_proj.bias", q_b)
        put(f"{hf}.k_proj.weight", k_w)
        put(f"{hf}.v_proj.weight", v_w)
        put(f"{hf}.v_proj.bias", v_b)
        linear(f"{ct2}/linear_1", f"{hf}.out_proj")
        norm(f"{ct2}/layer_norm", f"{hf}_layer_norm")

    def cross_attention(ct2: str, hf: str) -> None:
        linear(f"{ct2}/linear_0", f"{hf}.q_proj")
        k_w, v_w = np.split(take(f"{ct2}/linear_1/weight"), 2)
        k_b, v_b = np.split(take(f"{ct2}/linear_1/bias"), 2)
        if np.any(k_b != 0):
            raise ConversionError(f"{ct2}: Whisper's key projection has no bias, but the file has one")
        put(f"{hf}.k_proj.weight", k_w)
        put(f"{hf}.v_proj.weight", v_w)
        put(f"{hf}.v_proj.bias", v_b)
        linear(f"{ct2}/linear_2", f"{hf}.out_proj")
        norm(f"{ct2}/layer_norm", f"{hf}_layer_norm")

    def ffn(ct2: str, hf: str) -> None:
        linear(f"{ct2}/linear_0", f"{hf}.fc1")
        linear(f"{ct2}/linear_1", f"{hf}.fc2")
        norm(f"{ct2}/layer_norm", f"{hf}.final_layer_norm")

    linear("encoder/conv1", "model.encoder.conv1")
    linear("encoder/conv2", "model.encoder.conv2")
    # Keep the shipped f16 table: recomputing the exact sinusoid moves the encoder output measurably.
    put("model.encoder.embed_positions.weight", take("encoder/position_encodings/encodings"))
    for i in range(count_layers(model, "encoder")):
        self_attention(f"encoder/layer_{i}/self_attention", f"model.encoder.layers.{i}.self_attn")
        ffn(f"encoder/layer_{i}/ffn", f"model.encoder.layers.{i}")
    norm("encoder/layer_norm", "model.encoder.layer_norm")

    put("model.decoder.embed_tokens.weight", take("decoder/embeddings/weight"))
    put("model.decoder.embed_positions.weight", take("decoder/position_encodings/encodings"))
    for i in range(count_layers(model, "decoder")):
        self_attention(f"decoder/layer_{i}/self_attention", f"model.decoder.layers.{i}.self_attn")
        cross_attention(f"decoder/layer_{i}/attention", f"model.decoder.layers.{i}.encoder_attn")
        ffn(f"decoder/layer_{i}/ffn", f"model.decoder.layers.{i}")
    norm("decoder/layer_norm", "model.decoder.layer_norm")

    projection = model.aliases.get("decoder/projection/weight")
    if projection is None and "decoder/projection/weight" in src:
        if not np.array_equal(src["decoder/projection/weight"], src["decoder/embeddings/weight"]):
            raise ConversionError("untied output projection is not supported for Whisper")
        used.add("decoder/projection/weight")
    elif projection not in (None, "decoder/embeddings/weight"):
        raise ConversionError(f"output projection aliases {projection!r}, expected the decoder embeddings")

    unmapped = sorted(set(src) - used)
    if unmapped:
        raise ConversionError(f"{len(unmapped)} tensors in model.bin have no mapping: {unmapped[:5]}")
    return out
