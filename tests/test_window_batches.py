"""An audio-window student's transcript depends on its own audio only: one window a batch, in decoding and training."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file

from speechkd.audio import load_audio
from speechkd.cli import main
from speechkd.decoding import DecodingOptions, decode_audios, length_grouped_batches
from speechkd.distill import DistillConfig, distill
from speechkd.distill.data import epoch_batches
from speechkd.manifest import read_manifest, write_manifest
from speechkd.models import load_model
from speechkd.student import CreateStudentConfig, create_student


@pytest.mark.parametrize("world", [1, 2])
def test_window_sampler_keeps_every_utterance_once_in_batches_of_one_window(world):
    windows = [random.Random(i).choice([300, 400, 500, 900, 1600]) for i in range(53)]
    for epoch in range(3):
        per_rank = [epoch_batches(53, 4, epoch, 7, rank, world, windows) for rank in range(world)]
        assert (
            len({len(batches) for batches in per_rank}) == 1
        )  # every process takes the same number of steps
        seen = Counter(i for batches in per_rank for batch in batches for i in batch)
        assert set(seen) == set(range(53))
        if world == 1:
            assert all(count == 1 for count in seen.values())
        for step in zip(*per_rank):
            assert len({windows[i] for batch in step for i in batch}) == 1
            assert all(len(batch) <= 4 for batch in step)
    assert epoch_batches(53, 4, 0, 7, 0, 1, windows) == epoch_batches(53, 4, 0, 7, 0, 1, windows)
    assert epoch_batches(53, 4, 0, 7, 0, 1, windows) != epoch_batches(53, 4, 1, 7, 0, 1, windows)


def test_an_epoch_without_batches_stops_the_run_instead_of_spinning():
    from types import SimpleNamespace

    from speechkd.config import ConfigError
    from speechkd.distill.data import micro_batches

    config = SimpleNamespace(batch_size=4, seed=0, num_workers=0)
    with pytest.raises(ConfigError, match="no batches to train on"):
        next(micro_batches(0, collator=None, config=config, start=(0, 0), rank=0, world=1))


def test_a_negative_batch_size_fails_fast_below_the_config_too():
    import subprocess
    import sys

    code = (
        "from types import SimpleNamespace\n"
        "from speechkd.distill.data import micro_batches\n"
        "config = SimpleNamespace(batch_size=-3, seed=0, num_workers=0)\n"
        "next(micro_batches(10, None, config, (0, 0), 0, 1))\n"
    )
    # the hang of issue 16 looped here forever: the timeout turns a regression into a failure, not a stuck CI
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "batch_size must be a positive integer, not -3" in result.stderr


def test_length_grouped_batches_refuse_a_batch_size_below_one():
    with pytest.raises(ValueError, match="batch size must be a positive integer"):
        length_grouped_batches([1.0, 2.0], 0)


# ---------------------------------------------------------------------------- a briefly trained window student


@pytest.fixture(scope="module")
def window_run(tiny_en_dir, fotaq_dir, tmp_path_factory):
    """A tiny.en window student (its 4 decoder layers) trained 6 steps on 24 real train lines (8 of one word)."""
    root = tmp_path_factory.mktemp("window-batches")
    create_student(
        CreateStudentConfig(
            teacher=str(tiny_en_dir), output_dir=str(root / "student"), encoder_window="audio"
        )
    )
    lines = read_manifest(fotaq_dir / "train.jsonl")
    one_word = [r for r in lines if len(r["text"].split()) == 1][:8]  # so it learns to stop after one word
    train = [r | {"teacher_text": r["text"]} for r in lines[:16] + one_word]
    write_manifest(root / "train.jsonl", train)
    dev = read_manifest(fotaq_dir / "dev.jsonl")[:16]
    write_manifest(root / "dev.jsonl", dev)
    values = dict(
        teacher="bundled:tiny.en", student=str(root / "student"), train_manifest=str(root / "train.jsonl"),
        eval_manifest=str(root / "dev.jsonl"), freeze_encoder=False, batch_size=4, max_steps=6,
        warmup_steps=1, learning_rate=1e-4, save_steps=3, eval_steps=6, eval_at_start=False, progress=False,
        encoder_cache_dir=str(root / "cache"),
    )  # fmt: skip
    summary = distill(DistillConfig(output_dir=str(root / "run"), **values))
    return root, values, summary, dev


@pytest.mark.slow
def test_window_student_transcripts_do_not_depend_on_batch_size_or_order(window_run):
    root, _, _, dev = window_run
    model, processor = load_model(str(root / "run" / "final"), device="cpu")
    audios = [load_audio(r["audio"]) for r in dev]
    texts = {}
    for batch_size in (1, 4, 16):
        options = DecodingOptions(batch_size=batch_size, max_new_tokens=40)
        texts[batch_size] = [r.text for r in decode_audios(model, processor, audios, options)]
    order = list(range(len(audios)))
    random.Random(3).shuffle(order)
    shuffled = decode_audios(
        model, processor, [audios[i] for i in order], DecodingOptions(16, max_new_tokens=40)
    )
    texts["shuffled"] = [None] * len(order)
    for position, i in enumerate(order):
        texts["shuffled"][i] = shuffled[position].text
    assert texts[1] == texts[4] == texts[16] == texts["shuffled"]


@pytest.mark.slow
def test_a_briefly_trained_window_student_says_one_word_lines_without_looping(window_run, fotaq_dev_records):
    root = window_run[0]
    model, processor = load_model(str(root / "run" / "final"), device="cpu")
    lines = [r for r in fotaq_dev_records if len(r["text"].split()) == 1][:6]
    results = decode_audios(
        model, processor, [load_audio(r["audio"]) for r in lines], DecodingOptions(batch_size=6)
    )
    lengths = {r["text"]: len(result.text.split()) for r, result in zip(lines, results)}
    assert all(1 <= n <= 3 for n in lengths.values()), lengths  # an untrained window student writes dozens


@pytest.mark.slow
def test_distills_evaluation_and_evaluate_score_a_window_student_alike(window_run, tmp_path):
    root, _, summary, _ = window_run
    args = ["evaluate", "--model", str(root / "run" / "final"), "--manifest", str(root / "dev.jsonl")]
    args += ["--output-dir", str(tmp_path / "eval"), "--batch-size", "16", "--latency-utterances", "0"]
    assert main([*args, "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n_utterances"] == 16
    assert metrics["wer"] == pytest.approx(summary["eval_wer"], abs=1e-9)


@pytest.mark.slow
def test_a_resumed_window_run_ends_with_the_same_weights(window_run):
    root, values, _, _ = window_run
    values = values | {"eval_manifest": None}
    distill(DistillConfig(output_dir=str(root / "parts"), stop_after=3, **values))
    assert distill(DistillConfig(output_dir=str(root / "parts"), resume=True, **values))["steps"] == 6
    whole = load_file(root / "run" / "final" / "model.safetensors")
    parts = load_file(root / "parts" / "final" / "model.safetensors")
    assert all(torch.equal(whole[name], parts[name]) for name in whole)


@pytest.mark.slow
def test_distill_reuses_the_teacher_encoder_output_that_pseudo_labelling_kept(
    window_run, tiny_en_dir, tmp_path, monkeypatch
):
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    root, values, _, _ = window_run
    lines = read_manifest(root / "train.jsonl")[:4]
    write_manifest(tmp_path / "in.jsonl", lines)
    args = ["pseudo-label", "--teacher", str(tiny_en_dir), "--manifest", str(tmp_path / "in.jsonl")]
    args += [
        "--output-dir",
        str(tmp_path / "pl"),
        "--encoder-cache-dir",
        str(tmp_path / "cache"),
        "--no-progress",
    ]
    assert main(args) == 0
    calls = []
    padded_forward = WhisperEncoder.forward
    monkeypatch.setattr(
        WhisperEncoder, "forward", lambda self, *a, **k: calls.append(1) or padded_forward(self, *a, **k)
    )
    overrides = {
        "train_manifest": str(tmp_path / "pl" / "train.jsonl"),
        "eval_manifest": None,
        "max_steps": 1,
    }
    overrides |= {"encoder_cache_dir": str(tmp_path / "cache")}
    summary = distill(DistillConfig(output_dir=str(tmp_path / "run"), **(values | overrides)))
    assert summary["steps"] == 1 and not summary["shared_encoder"]
    assert calls == []  # the teacher's 30 s encoder never ran: its output came from pseudo-labelling
