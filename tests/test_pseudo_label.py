"""Stage 1 as a user runs it: the bundled tiny.en teacher pseudo-labels real FOTAQ speech."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechkd.audio import load_audio
from speechkd.decoding import DecodingOptions
from speechkd.filters import LABEL_FREE_CHECKS, FilterConfig
from speechkd.manifest import read_manifest, write_manifest
from speechkd.pseudo_label import PseudoLabelConfig, format_summary, pseudo_label

# One thread everywhere: the same batches then give bit-identical numbers in every run and process.
ENV = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def speechkd(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "speechkd.cli", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"speechkd {' '.join(args)} failed:\n{result.stderr}")
    return result


def fotaq_lines(fotaq_dir: Path, split: str, n: int, max_seconds: float = 2.5) -> list[dict]:
    """The first N short lines of a FOTAQ split (short lines keep the tests fast)."""
    return [r for r in read_manifest(fotaq_dir / f"{split}.jsonl") if r["duration"] <= max_seconds][:n]


def long_clip(records: list[dict], path: Path, seconds: float = 32.0) -> Path:
    """A real-speech clip over 30 s, made by joining FOTAQ lines."""
    audio = np.concatenate([load_audio(r["audio"]) for r in records])
    sf.write(path, np.tile(audio, int(np.ceil(seconds * 16000 / len(audio))))[: int(seconds * 16000)], 16000)
    return path


def test_the_config_switches_checks_off_and_needs_one_input():
    config = PseudoLabelConfig(
        teacher="bundled:tiny.en", output_dir="out", manifest="m.jsonl",
        filters=FilterConfig(min_avg_logprob="off", max_compression_ratio=False), text_column="none",
    )  # fmt: skip
    filters = config.filters
    assert filters.min_avg_logprob is None and filters.max_compression_ratio is None
    assert config.text_column is None and config.decoding.batch_size == 16
    with pytest.raises(ValueError, match="exactly one input"):
        PseudoLabelConfig(teacher="bundled:tiny.en", output_dir="out")


@pytest.fixture(scope="module")
def labelled_run(fotaq_dir, tiny_en_dir, tmp_path_factory) -> Path:
    """Labelled and unlabelled FOTAQ lines, a 32 s clip, and a missing, a corrupt and an empty file."""
    folder = tmp_path_factory.mktemp("labelled")
    (folder / "corrupt.mp3").write_bytes(b"\xff\xfb" + b"not an mp3 frame" * 64)
    (folder / "empty.wav").write_bytes(b"")
    train = fotaq_lines(fotaq_dir, "train", 6)
    records = train + fotaq_lines(fotaq_dir, "unlabelled", 2, max_seconds=4.0)
    records += [
        {"id": "long", "audio": str(long_clip(train, folder / "long.wav")), "text": "not scored here"},
        {"id": "missing", "audio": str(folder / "missing.wav"), "text": "Never recorded."},
        {"id": "corrupt", "audio": str(folder / "corrupt.mp3")},
        {"id": "empty", "audio": str(folder / "empty.wav")},
    ]
    write_manifest(folder / "input.jsonl", records)
    config = PseudoLabelConfig(
        teacher=str(tiny_en_dir), manifest=str(folder / "input.jsonl"), output_dir=str(folder / "out"),
        decoding=DecodingOptions(batch_size=4), progress=False, encoder_cache_dir=str(folder / "cache"),
    )  # fmt: skip
    pseudo_label(config)
    return folder


@pytest.mark.slow
def test_the_teachers_encoder_output_is_kept_where_distill_looks_for_it(labelled_run, tiny_en_dir):
    import torch
    from transformers import WhisperProcessor

    from speechkd.encoder_cache import audio_key, fingerprint
    from speechkd.student import CreateStudentConfig, create_student

    student_dir = labelled_run / "student"
    create_student(CreateStudentConfig(teacher=str(tiny_en_dir), output_dir=str(student_dir)))
    from speechkd.models import load_model

    student, _ = load_model(str(student_dir), device="cpu")
    folder = labelled_run / "cache" / f"encoder-{fingerprint(student.model.encoder)}"  # distill's name
    rows = read_manifest(labelled_run / "out" / "pseudo_labels.jsonl")
    short = [
        r for r in rows if not (r["reject_reason"] or "").startswith("audio_error") and r["id"] != "long"
    ]
    assert len(short) == 8
    assert sorted(p.stem for p in folder.glob("*.pt")) == sorted(audio_key(r["audio"]) for r in short)
    entry = torch.load(folder / f"{audio_key(short[0]['audio'])}.pt", weights_only=True)
    audio = load_audio(short[0]["audio"])
    assert entry["duration"] == pytest.approx(len(audio) / 16000)
    processor = WhisperProcessor.from_pretrained(student_dir)
    features = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        states = student.model.encoder(features).last_hidden_state[0]
    assert entry["encoder_states"].dtype == torch.float16
    torch.testing.assert_close(entry["encoder_states"].float(), states, atol=2e-2, rtol=1e-2)


@pytest.mark.slow  # shares a ~30 s teacher run (12 utterances, one long-form)
def test_every_utterance_is_written_in_input_order_with_its_signals(labelled_run):
    inputs = read_manifest(labelled_run / "input.jsonl")
    rows = read_manifest(labelled_run / "out" / "pseudo_labels.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in inputs]
    for row, record in zip(rows, inputs):
        assert row.items() >= {k: v for k, v in record.items() if k != "audio"}.items()  # input kept
        assert {
            "teacher_text",
            "avg_logprob",
            "compression_ratio",
            "no_speech_prob",
            "n_tokens",
        } <= row.keys()
        failed = (row["reject_reason"] or "").startswith("audio_error")
        assert ("wer" in row) == ("text" in record and not failed)


@pytest.mark.slow  # shares a ~30 s teacher run (12 utterances, one long-form)
def test_the_wer_filter_keeps_only_rows_under_the_threshold(labelled_run):
    rows = read_manifest(labelled_run / "out" / "pseudo_labels.jsonl")
    scored = [r for r in rows if r.get("wer") is not None and r["id"] != "long"]
    assert any(r["kept"] for r in scored) and any(not r["kept"] for r in scored)
    for row in scored:
        assert row["kept"] == (row["wer"] < 0.10)
        assert row["reject_reason"] == (None if row["kept"] else "wer>=10")
    train = read_manifest(labelled_run / "out" / "train.jsonl")
    assert [r["id"] for r in train] == [r["id"] for r in rows if r["kept"]]


@pytest.mark.slow  # shares a ~30 s teacher run (12 utterances, one long-form)
def test_bad_files_become_rejected_rows_and_the_run_goes_on(labelled_run):
    rows = {r["id"]: r for r in read_manifest(labelled_run / "out" / "pseudo_labels.jsonl")}
    for name, file_name in (("missing", "missing.wav"), ("corrupt", "corrupt.mp3"), ("empty", "empty.wav")):
        assert not rows[name]["kept"]
        assert rows[name]["reject_reason"].startswith(
            f"audio_error: cannot load audio {labelled_run / file_name}"
        )
    summary = json.loads((labelled_run / "out" / "summary.json").read_text())
    assert summary["reject_reasons"]["audio_error"] == 3
    assert summary["n_utterances"] == 12 and summary["n_kept"] == sum(r["kept"] for r in rows.values())
    scored = sum(r.get("wer") is not None for r in rows.values())  # the missing file has text but no WER
    assert summary["n_scored"] == scored < summary["n_with_reference"]
    assert f"on {scored} references" in format_summary(summary, labelled_run / "out")


@pytest.mark.slow  # shares a ~30 s teacher run (12 utterances, one long-form)
def test_long_audio_is_decoded_long_form_and_unlabelled_audio_judged_without_labels(labelled_run):
    rows = read_manifest(labelled_run / "out" / "pseudo_labels.jsonl")
    long = next(r for r in rows if r["id"] == "long")
    assert long["duration"] == pytest.approx(32.0, abs=0.01) and long["n_tokens"] > 60
    unlabelled = [r for r in rows if "text" not in r and r["id"] not in ("corrupt", "empty")]
    assert len(unlabelled) == 2
    for row in unlabelled:
        assert "wer" not in row
        assert row["kept"] or row["reject_reason"] in LABEL_FREE_CHECKS


@pytest.mark.slow  # shares a ~30 s teacher run (12 utterances, one long-form)
def test_a_finished_or_differently_configured_directory_is_refused(labelled_run, tiny_en_dir):
    config = PseudoLabelConfig(
        teacher=str(tiny_en_dir), manifest=str(labelled_run / "input.jsonl"),
        output_dir=str(labelled_run / "out"), decoding=DecodingOptions(batch_size=4), progress=False,
    )  # fmt: skip
    with pytest.raises(FileExistsError, match="--overwrite"):
        pseudo_label(config)
    unfinished = labelled_run / "unfinished"
    shutil.copytree(labelled_run / "out", unfinished)
    (unfinished / "summary.json").unlink()
    other = dataclasses.replace(config, output_dir=str(unfinished), decoding=DecodingOptions(batch_size=8))
    with pytest.raises(ValueError, match="batch_size: 4 -> 8"):
        pseudo_label(other)


# ------------------------------------------------------------------ resuming and sharding (subprocesses)


@pytest.fixture(scope="module")
def eight_lines(fotaq_dir, tiny_en_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("eight")
    write_manifest(
        folder / "input.jsonl", fotaq_lines(fotaq_dir, "train", 6) + fotaq_lines(fotaq_dir, "dev", 2)
    )
    return folder / "input.jsonl"


def run_args(manifest: Path, output_dir: Path) -> list[str]:
    return [
        "pseudo-label", "--teacher", "bundled:tiny.en", "--manifest", str(manifest),
        "--output-dir", str(output_dir), "--batch-size", "1", "--chunk-batches", "1", "--no-progress",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(eight_lines) -> Path:
    output_dir = eight_lines.parent / "uninterrupted"
    speechkd(*run_args(eight_lines, output_dir))
    return output_dir


def same_outputs(a: Path, b: Path) -> None:
    for name in ("pseudo_labels.jsonl", "train.jsonl"):
        assert (a / name).read_text() == (b / name).read_text(), name
    summaries = [json.loads((d / "summary.json").read_text()) for d in (a, b)]
    for key in ("n_utterances", "n_kept", "reject_reasons", "hours_in", "hours_kept", "teacher_wer"):
        assert summaries[0][key] == summaries[1][key], key


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_output(eight_lines, uninterrupted):
    output_dir = eight_lines.parent / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "speechkd.cli", *run_args(eight_lines, output_dir)],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while not list((output_dir / "chunks").glob("chunk-*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    assert process.wait() != 0, "the run finished before it could be killed"
    done = len(list((output_dir / "chunks").glob("chunk-*.json")))
    assert 1 <= done < 8 and not (output_dir / "summary.json").exists()

    resumed = speechkd(*run_args(eight_lines, output_dir))
    assert (
        f"pseudo-label: resuming in {output_dir}: {done} utterances already labelled, {8 - done} to go"
        in resumed.stderr
    )
    same_outputs(output_dir, uninterrupted)
    assert "resuming" not in speechkd(*run_args(eight_lines, eight_lines.parent / "fresh")).stderr
    again = speechkd(*run_args(eight_lines, output_dir), check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr


@pytest.mark.slow
def test_two_processes_under_accelerate_give_the_one_process_output(eight_lines, uninterrupted):
    output_dir = eight_lines.parent / "two_processes"
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533",
        "-m", "speechkd.cli", *run_args(eight_lines, output_dir),
    ]  # fmt: skip
    result = subprocess.run(launch, capture_output=True, text=True, env=ENV, timeout=900)
    assert result.returncode == 0, result.stderr
    processes = {json.loads(p.read_text())["process"] for p in (output_dir / "chunks").glob("chunk-*.json")}
    assert processes == {0, 1}
    same_outputs(output_dir, uninterrupted)
    assert result.stdout.count("pseudo-labelled 8 utterances") == 1  # one merged summary, from process 0


def test_a_dataset_folder_and_a_config_file_with_flags_that_win(fotaq_dir, tiny_en_dir, tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    lines = fotaq_lines(fotaq_dir, "dev", 2)
    for record in lines:
        shutil.copy(record["audio"], folder / Path(record["audio"]).name)
    long_clip(lines, folder / "long.wav")
    metadata = [{"file_name": Path(r["audio"]).name, "text": r["text"]} for r in lines]
    metadata.append({"file_name": "long.wav", "text": "too long to decode here"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metadata))
    config_file = tmp_path / "stage.yaml"
    config_file.write_text(
        "pseudo_label:\n  teacher: bundled:tiny.en\n  long_form: false\n  batch_size: 2\n  wer_threshold: 50\n"
        "  return_timestamps: true\n"
    )
    output_dir = tmp_path / "out"
    result = speechkd(
        "pseudo-label", "--config", str(config_file), "--dataset", str(folder),
        "--output-dir", str(output_dir), "--wer-threshold", "101", "--no-progress",
    )  # fmt: skip
    rows = read_manifest(output_dir / "pseudo_labels.jsonl")
    assert sorted(r["id"] for r in rows) == sorted([Path(r["audio"]).stem for r in lines] + ["long"])
    long = next(r for r in rows if r["id"] == "long")
    assert long["reject_reason"].startswith("too_long: 32.0 s")  # --no-long-form, from the file
    assert all(r["kept"] for r in rows if r["id"] != "long")  # the flag's 101 % won over the file's 50 %
    for row in rows:
        if row["id"] != "long":  # timestamped labels for the distiller, plain text for the filters
            assert row["teacher_text_timestamped"].startswith("<|0.00|>") and "<|" not in row["teacher_text"]
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["settings"]["batch_size"] == 2 and summary["settings"]["wer_threshold"] == 101
    assert "kept 2 " in result.stdout
