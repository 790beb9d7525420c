"""Stage 3: labels, batches and caches on the real tiny.en tokenizer; short real distillation runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from speechkd.cli import main
from speechkd.config import ConfigError
from speechkd.distill import DistillConfig, distill
from speechkd.distill.data import (
    Collator,
    epoch_batches,
    keep_previous,
    keep_timestamps,
    make_prompt,
    pad_sequences,
    training_examples,
)
from speechkd.encoder_cache import UtteranceCache
from speechkd.losses import IGNORE_INDEX
from speechkd.manifest import read_manifest, write_manifest
from speechkd.student import CreateStudentConfig, create_student


@pytest.fixture(scope="module")
def tokenizer(tiny_en_dir):
    from transformers import WhisperTokenizer

    return WhisperTokenizer.from_pretrained(tiny_en_dir)


def _examples(tokenizer, records, max_positions=448, prompt=None):
    prompt = prompt or make_prompt(tokenizer, multilingual=False, language=None)
    return training_examples(records, tokenizer, lambda _: prompt, "teacher_text", max_positions)


def test_labels_are_prompt_text_eot_with_the_prompt_masked(tokenizer):
    records = [
        {"id": "a", "audio": "/a.wav", "teacher_text": "Hello there."},
        {"id": "b", "audio": "/b.wav", "teacher_text": "Yes."},
    ]
    examples, skipped = _examples(tokenizer, records)
    assert not skipped
    sequence, n_prompt = examples[0].sequence(keep_timestamps=False)
    ids = tokenizer.convert_tokens_to_ids
    assert sequence[:n_prompt] == [ids("<|startoftranscript|>"), ids("<|notimestamps|>")]
    assert sequence[-1] == ids("<|endoftext|>")
    assert tokenizer.decode(sequence[n_prompt:-1]) == " Hello there."  # Whisper's leading space
    inputs, labels = pad_sequences([e.sequence(False) for e in examples], pad_id=ids("<|endoftext|>"))
    assert inputs.shape == labels.shape == (2, len(sequence) - 1)  # padded to the batch, not to 448
    assert labels[0, 0] == IGNORE_INDEX and labels[0, 1:].tolist() == sequence[2:]
    assert torch.equal(inputs[0], torch.tensor(sequence[:-1]))  # the teacher gets exactly these
    short = examples[1].sequence(False)[0]
    assert labels[1].tolist() == [IGNORE_INDEX, *short[2:]] + [IGNORE_INDEX] * (len(sequence) - len(short))


def test_multilingual_prompt_needs_a_language(base_dir):
    from transformers import WhisperTokenizer

    tokenizer = WhisperTokenizer.from_pretrained(base_dir)
    prompt = make_prompt(tokenizer, multilingual=True, language="en")
    ids = tokenizer.convert_tokens_to_ids
    assert prompt.start == (ids("<|startoftranscript|>"), ids("<|en|>"), ids("<|transcribe|>"))
    with pytest.raises(ConfigError, match="--language"):
        make_prompt(tokenizer, multilingual=True, language=None)


def test_timestamps_are_kept_or_dropped(tokenizer):
    row = {
        "id": "t",
        "audio": "/t.wav",
        "teacher_text": "Hi.",
        "teacher_text_timestamped": "<|0.00|> Hi.<|1.20|>",
    }
    examples, _ = _examples(tokenizer, [row])
    with_times, n_with = examples[0].sequence(keep_timestamps=True)
    without, n_without = examples[0].sequence(keep_timestamps=False)
    assert tokenizer.convert_tokens_to_ids("<|0.00|>") in with_times and n_with == 1
    assert not any(t >= examples[0].prompt.timestamp_begin for t in without) and n_without == 2
    assert tokenizer.decode(with_times[n_with:-1], decode_with_timestamps=True) == "<|0.00|> Hi.<|1.20|>"
    assert without[n_without:-1] == tokenizer.encode(" Hi.", add_special_tokens=False)
    draws = [keep_timestamps(seed=0, epoch=e, index=3, probability=0.5) for e in range(40)]
    assert draws == [keep_timestamps(0, e, 3, 0.5) for e in range(40)] and 5 < sum(draws) < 35


def test_previous_clip_text_is_a_masked_prompt(tokenizer):
    records = [
        {"id": "c0", "audio": "/c0.wav", "teacher_text": "The first clip."},
        {"id": "c1", "audio": "/c1.wav", "teacher_text": "The second one.", "previous": "c0"},
        {"id": "c2", "audio": "/c2.wav", "teacher_text": "Its clip was dropped.", "previous": "gone"},
        {"id": "c3", "audio": "/c3.wav", "teacher_text": "word " * 12, "previous": "c1"},
        {"id": "c4", "audio": "/c4.wav", "teacher_text": "word " * 12, "previous": "c3"},
    ]
    examples, _ = _examples(tokenizer, records, max_positions=24)
    ids = tokenizer.convert_tokens_to_ids
    sequence, n_prompt = examples[1].sequence(keep_timestamps=False, with_previous=True)
    assert sequence[0] == ids("<|startofprev|>")
    assert tokenizer.decode(sequence[1 : n_prompt - 2]) == " The first clip."
    assert sequence[n_prompt - 2 : n_prompt] == [ids("<|startoftranscript|>"), ids("<|notimestamps|>")]
    assert tokenizer.decode(sequence[n_prompt:-1]) == " The second one."
    _, labels = pad_sequences([(sequence, n_prompt)], pad_id=ids("<|endoftext|>"))
    assert (labels[0, : n_prompt - 1] == IGNORE_INDEX).all()  # no loss on the previous text
    assert labels[0, n_prompt - 1 :].tolist() == sequence[n_prompt:]
    assert examples[0].sequence(False, with_previous=True) == examples[0].sequence(False)  # no previous clip
    assert examples[2].previous_ids == []  # the clip it names was filtered out
    long_sequence, _ = examples[4].sequence(False, with_previous=True)
    assert len(long_sequence) - 1 == 24  # the previous text is cut from the front to fit
    assert examples[4].previous_ids == examples[3].text_ids[-9:]
    capped, _ = training_examples(records, tokenizer, lambda _: examples[0].prompt, "teacher_text", 448, 4)
    assert capped[1].previous_ids == examples[1].previous_ids[-3:]  # 4 tokens with <|startofprev|>
    collator = Collator(examples, None, None, None, seed=0, timestamp_probability=0.0, prompt_probability=0.5)
    prompted = [len(collator.sequences([1])[0][0]) > len(examples[1].sequence(False)[0]) for _ in range(1)]
    draws = [keep_previous(0, e, 1, 0.5) for e in range(60)]
    assert 10 < sum(draws) < 50 and draws != [keep_timestamps(0, e, 1, 0.5) for e in range(60)]
    assert prompted == [keep_previous(0, 0, 1, 0.5)]


def test_unusable_rows_are_counted_not_raised(tokenizer):
    records = [
        {"id": "ok", "audio": "/ok.wav", "teacher_text": "fine"},
        {"id": "none", "audio": "/none.wav", "text": "no pseudo-label"},
        {"id": "long", "audio": "/long.wav", "teacher_text": "word " * 40},
        {"id": "minute", "audio": "/minute.wav", "teacher_text": "x", "duration": 61.0},
    ]
    examples, skipped = _examples(tokenizer, records, max_positions=20)
    assert [e.id for e in examples] == ["ok"]
    assert skipped == {"no teacher_text": 1, "label over 20 tokens": 1, "audio over 30 s": 1}


def test_epoch_batches_cover_the_data_and_split_evenly_across_processes():
    one = epoch_batches(10, batch_size=4, epoch=0, seed=0, rank=0, world=1)
    assert sorted(i for b in one for i in b) == list(range(10)) and [len(b) for b in one] == [4, 4, 2]
    assert one == epoch_batches(10, 4, 0, 0, 0, 1) and one != epoch_batches(10, 4, 1, 0, 0, 1)
    ranks = [epoch_batches(7, 2, 0, 0, rank, 2) for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1])  # DDP needs the same number of steps on every process
    assert {i for r in ranks for b in r for i in b} == set(range(7))


@pytest.mark.parametrize("on_disk", [True, False])
def test_utterance_cache_round_trip(tmp_path, on_disk):
    cache = UtteranceCache(tmp_path / "c" if on_disk else None)
    cache.put("k", {"encoder_states": torch.ones(3, 2, dtype=torch.float16), "duration": 1.5})
    cache.mark_failed("bad", "x.wav: unreadable")
    assert "k" in cache and "bad" not in cache
    assert cache.get("k")["duration"] == 1.5 and cache.failure("bad") == "x.wav: unreadable"
    if on_disk:  # another process sees what this one wrote
        assert UtteranceCache(tmp_path / "c").failure("bad") == "x.wav: unreadable"


# ---------------------------------------------------------------------------- real runs on tiny.en


@pytest.fixture(scope="module")
def run_inputs(tiny_en_dir, fotaq_dir, tmp_path_factory):
    """A 2-layer tiny.en student, 6 FOTAQ train utterances whose transcripts stand in for pseudo-labels (each
    naming the one before as `previous`, for prompts), 3 dev utterances, and an encoder cache shared by the runs."""
    root = tmp_path_factory.mktemp("distill")
    create_student(CreateStudentConfig(teacher=str(tiny_en_dir), output_dir=str(root / "student")))
    train = read_manifest(fotaq_dir / "train.jsonl")[:6]
    train = [
        r | {"teacher_text": r["text"]} | ({"previous": train[i - 1]["id"]} if i else {})
        for i, r in enumerate(train)
    ]
    write_manifest(root / "train.jsonl", train)
    write_manifest(root / "dev.jsonl", read_manifest(fotaq_dir / "dev.jsonl")[:3])
    return root


def _config(root: Path, output: str, **overrides) -> DistillConfig:
    values = dict(
        teacher="bundled:tiny.en", student=str(root / "student"), train_manifest=str(root / "train.jsonl"),
        output_dir=str(root / output), encoder_cache_dir=str(root / "cache"), batch_size=2, max_steps=4,
        warmup_steps=1, save_steps=2, progress=False,
    )  # fmt: skip
    return DistillConfig(**(values | overrides))


@pytest.mark.slow
def test_distill_writes_students_draft_metrics_and_plots(run_inputs, tiny_en_dir, fotaq_dev_records):
    from transformers import WhisperForCausalLM, pipeline

    from speechkd.audio import load_audio
    from speechkd.models import load_model

    root = run_inputs
    args = ["distill", "--teacher", "bundled:tiny.en", "--student", str(root / "student")]
    args += ["--train-manifest", str(root / "train.jsonl"), "--eval-manifest", str(root / "dev.jsonl")]
    args += [
        "--output-dir",
        str(root / "run"),
        "--encoder-cache-dir",
        str(root / "cache"),
        "--batch-size",
        "2",
    ]
    assert main([*args, "--max-steps", "4", "--eval-steps", "2", "--warmup-steps", "1", "--no-progress"]) == 0
    out = root / "run"
    for name in ("final", "best", "draft", "loss.png", "wer.png", "metrics.json", "eval_predictions.jsonl"):
        assert (out / name).exists(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[0]["teacher_wer"] < 0.5  # teacher and untrained student first
    assert [r["step"] for r in rows if "eval_wer" in r] == [0, 2, 4]
    assert any("kl" in r and r["kl"] > 0 for r in rows)
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["shared_encoder"] and summary["best_wer"] <= summary["untrained_wer"]
    audio = load_audio(fotaq_dev_records[0]["audio"])
    asr = pipeline("automatic-speech-recognition", model=str(out / "final"))
    assert isinstance(asr(audio, generate_kwargs={"max_new_tokens": 4})["text"], str)
    # the draft speeds up the teacher without changing its greedy output
    teacher, processor = load_model(str(tiny_en_dir), device="cpu")
    features = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    draft = WhisperForCausalLM.from_pretrained(out / "draft")
    plain = teacher.generate(features, max_new_tokens=12)
    assert torch.equal(teacher.generate(features, assistant_model=draft, max_new_tokens=12), plain)
    assert main([*args, "--max-steps", "4"]) == 2  # an earlier run is never clobbered unasked


@pytest.mark.slow
def test_interrupted_and_resumed_run_ends_with_the_same_weights(run_inputs):
    root = run_inputs
    distill(_config(root, "whole"))
    stopped = distill(_config(root, "parts", stop_after=2))
    assert stopped["stopped_early"] and stopped["steps"] == 2
    assert distill(_config(root, "parts", resume=True))["steps"] == 4
    whole = load_file(root / "whole" / "final" / "model.safetensors")
    parts = load_file(root / "parts" / "final" / "model.safetensors")
    assert whole.keys() == parts.keys()
    assert all(torch.equal(whole[name], parts[name]) for name in whole)
    with pytest.raises(ConfigError, match="learning_rate"):
        distill(_config(root, "parts", resume=True, learning_rate=3e-4))


@pytest.mark.slow
def test_teacher_topk_cache_trains_without_running_the_teacher(run_inputs):
    summary = distill(_config(run_inputs, "topk", teacher_topk=64, max_steps=2, prompt_probability=0.5))
    assert summary["steps"] == 2
    assert any(p.name.startswith("teacher-") for p in (run_inputs / "cache").iterdir())


@pytest.mark.slow
def test_bad_input_is_filtered_with_counts_or_refused(run_inputs, tmp_path):
    root = run_inputs
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    rows = read_manifest(root / "train.jsonl")[:2]
    rows += [{"id": "no-label", "audio": rows[0]["audio"], "text": "x"}]
    rows += [{"id": "broken", "audio": str(broken), "teacher_text": "x"}]
    rows += [{"id": "long", "audio": rows[1]["audio"], "teacher_text": "word " * 500}]
    write_manifest(tmp_path / "mixed.jsonl", rows)
    summary = distill(_config(root, "mixed", train_manifest=str(tmp_path / "mixed.jsonl"), max_steps=1))
    report = summary["data"]
    assert report["train_skipped"] == {"no teacher_text": 1, "label over 448 tokens": 1}
    assert report["audio_errors"] == 1 and report["train_examples"] == 2
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ConfigError, match="no rows"):
        distill(_config(root, "empty", train_manifest=str(tmp_path / "empty.jsonl")))
    with pytest.raises(ConfigError, match="no usable rows"):
        distill(_config(root, "nolabel", train_manifest=str(root / "dev.jsonl")))


@pytest.mark.slow
def test_two_processes_under_accelerate_launch(run_inputs):
    root = run_inputs
    launch = "-m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1"
    launch += " --mixed_precision no --dynamo_backend no -m speechkd.cli"
    command = [sys.executable, *launch.split()]
    command += ["distill", "--teacher", "bundled:tiny.en", "--student", str(root / "student")]
    command += ["--train-manifest", str(root / "train.jsonl"), "--output-dir", str(root / "ddp")]
    command += [
        "--encoder-cache-dir",
        str(root / "cache"),
        "--batch-size",
        "1",
        "--max-steps",
        "2",
        "--no-progress",
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((root / "ddp" / "metrics.json").read_text())
    assert summary["steps"] == 2
    assert (root / "ddp" / "checkpoints" / "step-2" / "rng-1.pt").exists()  # one RNG state per process


@pytest.mark.slow
def test_audio_window_student_trains_its_encoder(run_inputs, tiny_en_dir):
    from speechkd.encoder_window import window_of
    from speechkd.models import load_model

    root = run_inputs
    create_student(
        CreateStudentConfig(teacher=str(tiny_en_dir), output_dir=str(root / "window"), encoder_window="audio")
    )
    with pytest.raises(ConfigError, match="freeze_encoder: false"):
        distill(_config(root, "window-frozen", student=str(root / "window")))
    summary = distill(
        _config(root, "window-run", student=str(root / "window"), freeze_encoder=False, max_steps=2)
    )
    assert summary["steps"] == 2 and not summary["shared_encoder"]
    trained, _ = load_model(str(root / "window-run" / "final"), device="cpu")
    untrained, _ = load_model(str(root / "window"), device="cpu")
    assert window_of(trained) == "audio"
    before, after = untrained.model.encoder.layers[0].fc1.weight, trained.model.encoder.layers[0].fc1.weight
    assert not torch.equal(before, after)
