"""`speechkd evaluate` on real bundled models and real FOTAQ speech: accuracy, speed, speculative decoding."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from student_helper import make_student

from speechkd.audio import SAMPLE_RATE, load_audio
from speechkd.decoding import DecodingOptions
from speechkd.evaluate import EvaluateConfig, evaluate
from speechkd.manifest import ManifestError, read_manifest, write_manifest


def speechkd(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "speechkd.cli", *args], capture_output=True, text=True, env=env, timeout=900
    )


def quick(tmp_path, manifest, **overrides) -> EvaluateConfig:
    """A small, single-threaded evaluation: one warm-up call, no cost profile unless asked."""
    values = {"model": "bundled:tiny.en", "manifests": (str(manifest),), "output_dir": str(tmp_path / "eval")}
    values |= {"threads": 1, "profile_utterances": 0, "progress": False, "bootstrap_samples": 200}
    return EvaluateConfig(**(values | overrides))


@pytest.fixture(scope="module")
def student_dir(tiny_en_dir, tmp_path_factory):
    """An untrained 2-decoder-layer student of tiny.en (same encoder: a decoder-only draft)."""
    return make_student("bundled:tiny.en", tmp_path_factory.mktemp("student") / "tiny-2")


@pytest.fixture(scope="module")
def four_and_a_broken_file(fotaq_dev_records, tmp_path_factory):
    folder = tmp_path_factory.mktemp("manifest")
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF but not really a wave file")
    records = fotaq_dev_records[:4] + [
        {"id": "broken", "audio": str(broken), "text": "nothing", "speaker": "JOE"}
    ]
    write_manifest(folder / "dev4.jsonl", records)
    return folder / "dev4.jsonl"


@pytest.fixture(scope="module")
def evaluation(tiny_en_dir, student_dir, four_and_a_broken_file, tmp_path_factory):
    """The user's one command: student against teacher, and the teacher with the student as draft."""
    config = quick(
        tmp_path_factory.mktemp("run"),
        four_and_a_broken_file,
        model=str(student_dir),
        baseline="bundled:tiny.en",
        assistant=str(student_dir),
        decoding=DecodingOptions(batch_size=2),
        profile_utterances=1,
    )
    return config, evaluate(config)


@pytest.mark.slow
def test_metrics_hold_accuracy_speed_and_the_failed_file(evaluation):
    config, metrics = evaluation
    teacher = metrics["systems"]["baseline"]
    for system in (metrics, teacher):
        assert system["n_utterances"] == 5 and system["n_failed"] == 1
        assert system["failed"][0]["id"] == "broken" and "broken.wav" in system["failed"][0]["error"]
        assert system["rtfx"] > 0 and system["tokens_per_second"] > 0
        assert system["latency_p50"] <= system["latency_p90"]
    assert teacher["wer"] < 0.2 < metrics["wer"]  # tiny.en on clean acted speech; its untrained student
    assert teacher["wer_ortho"] >= teacher["wer"]  # case and punctuation count orthographically
    assert 0 <= teacher["cer"] < 0.1 < metrics["cer"]  # the teacher may be exact on 4 clean lines
    manifest = read_manifest(config.manifests[0])
    assert metrics["audio_seconds"] == pytest.approx(sum(r["duration"] for r in manifest[:4]))
    assert metrics["parameters"] < teacher["parameters"]
    assert set(metrics["speakers"]) == {"CHEF", "JOE"}
    assert metrics["macro"]["wer"] == pytest.approx(metrics["manifests"]["dev4"]["wer"])
    assert {"torch", "transformers"} <= set(metrics["versions"]) and metrics["device"].startswith("cpu")


@pytest.mark.slow
def test_baseline_comparison_has_a_speedup_and_a_bootstrap_interval(evaluation):
    _, metrics = evaluation
    comparison = metrics["comparison"]
    student, teacher = metrics["systems"]["model"], metrics["systems"]["baseline"]
    assert comparison["speedup"] == pytest.approx(student["rtfx"] / teacher["rtfx"])
    assert comparison["wer_difference"] == pytest.approx(student["wer"] - teacher["wer"])
    low, high = comparison["ci95"]
    assert low <= comparison["wer_difference"] <= high
    assert low > 0  # the untrained student is surely worse than its teacher
    assert set(metrics["cost_profile"]) == {"model", "baseline", "speculative"}
    assert {"encoder_speedup", "decoder_speedup", "equal_tokens_speedup"} <= set(comparison)


@pytest.mark.slow
def test_speculative_decoding_reproduces_the_teachers_greedy_output(evaluation):
    config, metrics = evaluation
    speculative = metrics["speculative"]
    assert speculative["target"] == "baseline"  # with a baseline, the draft helps the teacher
    assert speculative["draft"] == "decoder-only"  # same encoder weights: it reuses the teacher's output
    assert speculative["speculative_mismatches"] == 0 and speculative["n_utterances"] == 4
    assert 0 <= speculative["accepted"] <= speculative["proposed"] and speculative["rounds"] > 0
    assert speculative["plain_seconds"] > 0 and speculative["speedup"] > 0
    assert speculative["perfect_draft_decoder_speedup"] > 0 and speculative["verify_cost_ratio"] > 0
    rows = read_manifest(os.path.join(config.output_dir, "predictions-speculative.jsonl"))
    decoded = [r for r in rows if r["error"] is None]
    assert all(r["hypothesis"] == r["greedy_hypothesis"] for r in decoded)
    assert sum(r["draft_accepted"] for r in decoded) == speculative["accepted"]


@pytest.mark.slow
def test_outputs_are_written(evaluation):
    config, metrics = evaluation
    out = config.output_dir
    names = set(os.listdir(out))
    assert {"metrics.json", "predictions.jsonl", "predictions-baseline.jsonl", "report.md"} <= names
    assert {"wer_vs_rtfx.png", "speaker_wer.png", "latency_hist.png"} <= names
    rows = read_manifest(os.path.join(out, "predictions.jsonl"))
    assert len(rows) == 5
    good = next(r for r in rows if r["error"] is None)
    assert {"reference", "hypothesis", "reference_norm", "hypothesis_norm", "wer", "latency_s"} <= set(good)
    report = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    assert "| model |" in report and "Speculative decoding" in report and "broken" in report
    assert json.load(open(os.path.join(out, "metrics.json")))["wer"] == metrics["wer"]


@pytest.mark.slow
def test_a_draft_with_its_own_encoder_also_keeps_the_output(tiny_en_dir, fotaq_dev_records, tmp_path):
    student = make_student("bundled:tiny.en", tmp_path / "enc2", encoder_layers=2)
    write_manifest(tmp_path / "three.jsonl", fotaq_dev_records[4:7])
    config = quick(
        tmp_path,
        tmp_path / "three.jsonl",
        assistant=str(student),
        decoding=DecodingOptions(batch_size=2),
        latency_utterances=2,
        warmup=0,
    )
    speculative = evaluate(config)["speculative"]
    assert speculative["draft"] == "full"
    assert speculative["speculative_mismatches"] == 0 and speculative["proposed"] > 0
    assert speculative["n_utterances"] == 2  # timed at batch size 1 on the latency subset only


@pytest.mark.slow
def test_long_form_audio_is_decoded_sequentially(tiny_en_dir, fotaq_dev_records, tmp_path):
    pause = np.zeros(SAMPLE_RATE // 4, dtype=np.float32)
    pieces, texts = [], []
    for record in fotaq_dev_records:
        if sum(len(p) for p in pieces) > 62 * SAMPLE_RATE:
            break
        pieces += [load_audio(record["audio"]), pause]
        texts.append(record["text"])
    sf.write(tmp_path / "scene.wav", np.concatenate(pieces), SAMPLE_RATE)
    write_manifest(
        tmp_path / "long.jsonl",
        [{"id": "scene", "audio": str(tmp_path / "scene.wav"), "text": " ".join(texts)}],
    )
    metrics = evaluate(
        quick(tmp_path, tmp_path / "long.jsonl", decoding=DecodingOptions(batch_size=1), warmup=0)
    )
    long_form = metrics["long_form"]
    assert long_form["n_decoded"] == 1 and long_form["audio_seconds"] > 60
    assert long_form["wer"] < 0.25  # the whole scene, not just its first 30 s window
    assert long_form["repeated_5grams"] <= long_form["ref_repeated_5grams"] + 2  # no looping hallucination
    assert "ins_rate" in long_form


def test_a_manifest_without_text_is_a_clear_error(fotaq_dev_records, tmp_path):
    write_manifest(
        tmp_path / "bare.jsonl", [{"id": r["id"], "audio": r["audio"]} for r in fotaq_dev_records[:2]]
    )
    with pytest.raises(ManifestError, match="no `text`.*--no-reference"):
        evaluate(quick(tmp_path, tmp_path / "bare.jsonl"))
    assert not (tmp_path / "eval" / "metrics.json").exists()


@pytest.mark.slow
def test_no_reference_and_a_config_file_whose_values_flags_override(tiny_en_dir, fotaq_dev_records, tmp_path):
    write_manifest(
        tmp_path / "bare.jsonl", [{"id": r["id"], "audio": r["audio"]} for r in fotaq_dev_records[:2]]
    )
    (tmp_path / "eval.yaml").write_text(
        f"evaluate:\n  model: bundled:tiny.en\n  manifests: [{tmp_path / 'bare.jsonl'}]\n  batch_size: 8\n"
        "  no_reference: true\n  warmup: 0\n  threads: 1\n  profile_utterances: 0\n"
    )
    result = speechkd("evaluate", "--config", str(tmp_path / "eval.yaml"), "--output-dir", str(tmp_path / "out"),
                      "--batch-size", "1", "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["config"]["batch_size"] == 1 and metrics["systems"]["model"]["batch_size"] == 1
    assert metrics["wer"] is None and metrics["rtfx"] > 0 and metrics["n_utterances"] == 2
    assert all(r["hypothesis"] for r in read_manifest(tmp_path / "out" / "predictions.jsonl"))
    again = speechkd(
        "evaluate", "--config", str(tmp_path / "eval.yaml"), "--output-dir", str(tmp_path / "out")
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr


@pytest.mark.slow
def test_a_decoder_only_draft_export_is_used_as_it_is(tiny_en_dir, student_dir, tmp_path):
    from transformers import WhisperForCausalLM

    from speechkd.evaluate.speculative import load_draft
    from speechkd.models import load_model

    WhisperForCausalLM.from_pretrained(student_dir).save_pretrained(
        tmp_path / "draft"
    )  # as `distill` exports it
    teacher, _ = load_model("bundled:tiny.en")
    draft, kind = load_draft(str(tmp_path / "draft"), teacher)
    assert kind == "decoder-only" and draft.config.decoder_layers == 2
