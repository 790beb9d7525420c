"""Build a transformers Whisper checkpoint (model, processor, generation config) from CTranslate2 files."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
from transformers import (
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)

from speechkd.convert.ctranslate2 import ConversionError, count_layers, ct2_to_state_dict, read_ct2_model

N_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|> in 20 ms steps
_LANGUAGE_TOKEN = re.compile(r"^<\|[a-z]{2,3}\|>$")


def _special_ids(tokenizer_json: dict) -> dict[str, int]:
    return {t["content"]: t["id"] for t in tokenizer_json["added_tokens"] if t.get("special")}


def _patched_tokenizer_json(path: Path) -> dict:
    """Load a CTranslate2 tokenizer.json; add the timestamp tokens that older exports lack."""
    data = json.loads(path.read_text(encoding="utf-8"))
    first_merge = data["model"]["merges"][0]
    if first_merge not in ("Ġ t", ["Ġ", "t"]):
        raise ConversionError(
            f"{path}: the first BPE merge is {first_merge!r}, not 'Ġ t'; this tokenizer would encode ' the' "
            "wrongly (a known defect of some repackaged Whisper tokenizers)"
        )
    contents = {t["content"] for t in data["added_tokens"]}
    if "<|0.00|>" not in contents:
        next_id = max(t["id"] for t in data["added_tokens"]) + 1
        for i in range(N_TIMESTAMPS):
            data["added_tokens"].append(
                {"id": next_id + i, "content": f"<|{i * 0.02:.2f}|>", "single_word": False, "lstrip": False,
                 "rstrip": False, "normalized": True, "special": False}
            )  # fmt: skip
    return data


def build_tokenizer(tokenizer_json: Path, vocab_size: int) -> WhisperTokenizer:
    """A WhisperTokenizer from a CTranslate2 tokenizer.json, checked against the model's vocabulary."""
    data = _patched_tokenizer_json(tokenizer_json)
    specials = sorted(_special_ids(data).items(), key=lambda item: item[1])
    eot = "<|endoftext|>"
    config = {
        "tokenizer_class": "WhisperTokenizer",
        "bos_token": eot,
        "eos_token": eot,
        "unk_token": eot,
        "pad_token": eot,
        "extra_special_tokens": [content for content, _ in specials if content != eot],
        "model_max_length": 448,
        "errors": "replace",
        "add_prefix_space": False,
    }
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        Path(tmp, "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
        tokenizer = WhisperTokenizer.from_pretrained(tmp)
    _check_tokenizer(tokenizer, vocab_size, tokenizer_json)
    return tokenizer


def _check_tokenizer(tokenizer: WhisperTokenizer, vocab_size: int, source: Path) -> None:
    if len(tokenizer) != vocab_size:
        raise ConversionError(
            f"{source}: tokenizer has {len(tokenizer)} tokens, model vocabulary {vocab_size}"
        )
    no_timestamps = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    if tokenizer.all_special_ids[-1] != no_timestamps:
        raise ConversionError(f"{source}: <|notimestamps|> must be the last special token")
    if tokenizer.convert_tokens_to_ids("<|0.00|>") != no_timestamps + 1:
        raise ConversionError(f"{source}: timestamp tokens must follow <|notimestamps|>")
    if len(tokenizer.encode(" the", add_special_tokens=False)) != 1:
        raise ConversionError(f"{source}: ' the' is not a single token; the BPE merges are broken")


def _whisper_config(ct2, state: dict, ids: dict[str, int]) -> WhisperConfig:
    vocab_size, d_model = state["model.decoder.embed_tokens.weight"].shape
    eot = ids["<|endoftext|>"]
    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=state["model.encoder.conv1.weight"].shape[1],
        d_model=d_model,
        encoder_layers=count_layers(ct2, "encoder"),
        decoder_layers=count_layers(ct2, "decoder"),
        encoder_attention_heads=int(ct2.scalars["encoder/num_heads"]),
        decoder_attention_heads=int(ct2.scalars["decoder/num_heads"]),
        encoder_ffn_dim=state["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=state["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=state["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=state["model.decoder.embed_positions.weight"].shape[0],
        decoder_start_token_id=ids["<|startoftranscript|>"],
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        tie_word_embeddings=True,
    )


def _generation_config(model: WhisperForConditionalGeneration, ct2_config: dict, ids: dict[str, int]) -> None:
    gen = model.generation_config
    eot = ids["<|endoftext|>"]
    multilingual = model.config.vocab_size >= 51865
    gen.decoder_start_token_id = ids["<|startoftranscript|>"]
    gen.bos_token_id = gen.eos_token_id = gen.pad_token_id = eot
    gen.no_timestamps_token_id = ids["<|notimestamps|>"]
    gen.prev_sot_token_id = ids["<|startofprev|>"]
    gen.suppress_tokens = list(ct2_config["suppress_ids"])
    gen.begin_suppress_tokens = [220, eot]
    gen.alignment_heads = [list(pair) for pair in ct2_config["alignment_heads"]]
    gen.max_initial_timestamp_index = 50
    gen.max_length = model.config.max_target_positions
    gen.return_timestamps = False
    gen._from_model_config = False  # else transformers rebuilds it from config.json and drops lang_to_id
    gen.is_multilingual = multilingual
    if multilingual:
        languages = {c: i for c, i in ids.items() if _LANGUAGE_TOKEN.match(c)}
        if sorted(languages.values()) != sorted(ct2_config["lang_ids"]):
            raise ConversionError("language tokens in tokenizer.json do not match lang_ids in config.json")
        gen.lang_to_id = languages
        gen.task_to_id = {"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]}


def convert_ct2_whisper(model_parts: list[Path], asset_dir: Path, output_dir: Path) -> None:
    """Write a transformers checkpoint (safetensors + processor) for CTranslate2 Whisper files."""
    ct2 = read_ct2_model(model_parts)
    state = ct2_to_state_dict(ct2)
    ct2_config = json.loads((asset_dir / "config.json").read_text())
    vocab_size = state["model.decoder.embed_tokens.weight"].shape[0]
    tokenizer = build_tokenizer(asset_dir / "tokenizer.json", vocab_size)
    raw = json.loads((asset_dir / "tokenizer.json").read_text(encoding="utf-8"))
    ids = _special_ids(raw)

    model = WhisperForConditionalGeneration(_whisper_config(ct2, state, ids))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) - {"proj_out.weight"} or unexpected:
        raise ConversionError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    if not np.array_equal(model.proj_out.weight.detach().numpy(), state["model.decoder.embed_tokens.weight"]):
        raise ConversionError("output projection is not tied to the decoder embeddings")
    _generation_config(model, ct2_config, ids)

    feature_extractor = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins)
    processor = WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    model.eval()
    model.save_pretrained(output_dir, safe_serialization=True)
    processor.save_pretrained(output_dir)
