"""`speechkd transcribe` as a user runs it: real bundled teachers on real speech."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from speechkd.decoding import DecodingOptions, check_language_options, token_budget
from speechkd.manifest import read_manifest, write_manifest
from speechkd.models import load_model

SENTENCE = "He might even have been made amiable himself."


def speechkd(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "speechkd.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"speechkd {' '.join(args)} failed:\n{result.stderr}")
    return result


def test_tiny_en_transcribes_a_librivox_sentence_exactly(librivox_dir, tiny_en_dir):
    audio = next(
        r["audio"] for r in read_manifest(librivox_dir / "test.jsonl") if r["audio"].endswith("0930.wav")
    )
    result = speechkd("transcribe", "--model", "bundled:tiny.en", "--no-progress", audio)
    assert result.stdout.strip() == SENTENCE


def test_manifest_transcription_writes_rows_and_reports_wer(librivox_dir, tiny_en_dir, tmp_path):
    output = tmp_path / "out.jsonl"
    result = speechkd(
        "transcribe", "--model", "bundled:tiny.en", "--manifest", str(librivox_dir / "test.jsonl"),
        "--output", str(output), "--no-progress",
    )  # fmt: skip
    rows = read_manifest(output)
    assert len(rows) == 5 and all(r["hypothesis"] for r in rows)
    assert all("text" in r for r in rows)  # input fields are kept
    score = json.loads(result.stdout.strip().splitlines()[-1])
    assert score["n_utterances"] == 5 and score["wer"] < 0.15


def test_a_broken_file_is_reported_and_the_rest_transcribed(librivox_dir, tiny_en_dir, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    rows = read_manifest(librivox_dir / "test.jsonl")[:1] + [{"id": "broken", "audio": str(broken)}]
    write_manifest(tmp_path / "m.jsonl", rows)
    result = speechkd("transcribe", "--model", "bundled:tiny.en", "--manifest", str(tmp_path / "m.jsonl"))
    assert "broken.wav" in result.stderr and "failed: broken" in result.stderr
    assert result.stdout.splitlines()[0].strip()


def test_a_language_on_an_english_only_model_is_a_clear_error(librivox_dir, tiny_en_dir):
    audio = read_manifest(librivox_dir / "test.jsonl")[0]["audio"]
    result = speechkd("transcribe", "--model", "bundled:tiny.en", "--language", "fr", audio, check=False)
    assert result.returncode == 2
    assert "English-only" in result.stderr


def test_multilingual_base_transcribes_english_with_a_language(librivox_dir, base_dir):
    model, processor = load_model("bundled:base", device="cpu")
    check_language_options(model, DecodingOptions(language="fr"))  # allowed on a multilingual model
    audio = next(
        r["audio"] for r in read_manifest(librivox_dir / "test.jsonl") if r["audio"].endswith("0930.wav")
    )
    result = speechkd("transcribe", "--model", "bundled:base", "--language", "en", "--no-progress", audio)
    assert result.stdout.strip() == SENTENCE


def test_token_budget_grows_with_duration_and_respects_the_cap():
    options = DecodingOptions()
    assert token_budget(1.0, options, 440) < token_budget(10.0, options, 440) <= 440
    assert token_budget(600.0, options, 440) == 440
    assert token_budget(5.0, DecodingOptions(max_new_tokens=12), 440) == 12


def test_silence_decodes_to_little_text_with_a_high_no_speech_probability(tiny_en_dir, tmp_path):
    from speechkd.decoding import decode_short_form

    model, processor = load_model("bundled:tiny.en", device="cpu")
    silence = np.zeros(16000 * 3, dtype=np.float32)
    sf.write(tmp_path / "silence.wav", silence, 16000)
    (result,) = decode_short_form(model, processor, [silence], DecodingOptions())
    assert result.no_speech_prob is not None and result.no_speech_prob > 0.3
    assert len(result.text.split()) <= 3


def test_cli_help_teaches_every_command():
    result = speechkd("--help")
    for command in ("data", "models", "transcribe"):
        assert command in result.stdout
    assert "bundled:tiny.en" in speechkd("transcribe", "--help").stdout


@pytest.mark.parametrize("args", [[], ["--manifest", "x.jsonl", "a.wav"]])
def test_transcribe_needs_exactly_one_input_kind(args):
    result = speechkd("transcribe", "--model", "bundled:tiny.en", *args, check=False)
    assert result.returncode == 2 and "either audio FILEs or --manifest" in result.stderr
