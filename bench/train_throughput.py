"""Distillation training throughput: speechkd's default step vs the reference-style step, side by side.

Every system trains its own copy of the same 2-layer student on the same FOTAQ batches (labels: the
reference transcripts, tokenised as `speechkd distill` does) with AdamW, frozen encoder, CE + KL:

  reference   student and teacher run in full every step (each its own encoder), labels padded to 448
  +shared     the teacher reuses the student's frozen encoder output (the reference's --freeze_encoder)
  +dynamic    labels padded to the longest in the batch, not to 448
  +labels     the decoders project to the vocabulary only at label tokens (not prompt, not padding)
  speechkd    + the frozen encoder's output read from the disk cache: steps run decoders only (the default)
  +topk       + the teacher's top-k log-probs read from the cache: steps run the student's decoder only
  +frozen     + token embeddings (= output projection) frozen: a training choice, listed for its cost

Log-mel features are computed beforehand for the rows that need them (as the reference preprocesses its
dataset), so only training steps are timed. Systems take turns step by step in rotating order, so load
from other users of a shared machine falls on all of them alike. One-time cache costs are printed too.

    HF_HUB_OFFLINE=1 python bench/train_throughput.py --teacher bundled:tiny.en --batch-size 4 --steps 6
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch

from speechkd.audio import SAMPLE_RATE, load_audio
from speechkd.commands import quiet_transformers
from speechkd.distill.config import DistillConfig
from speechkd.distill.data import Batch, Collator, make_prompt, teacher_key, training_examples
from speechkd.distill.loop import batch_losses
from speechkd.distill.setup import Models, fill_teacher_cache, make_optimizer
from speechkd.encoder_cache import UtteranceCache
from speechkd.losses import IGNORE_INDEX, LossWeights
from speechkd.manifest import read_manifest
from speechkd.models import load_model, speechkd_home
from speechkd.student import CreateStudentConfig, create_student


def pad_to(batch: Batch, length: int, pad_id: int) -> Batch:
    """The reference collator's padding: decoder inputs and labels padded to LENGTH (448)."""
    extra = length - batch.decoder_input_ids.shape[1]
    inputs = torch.nn.functional.pad(batch.decoder_input_ids, (0, extra), value=pad_id)
    labels = torch.nn.functional.pad(batch.labels, (0, extra), value=IGNORE_INDEX)
    return Batch(batch.ids, inputs, labels, features=batch.features)


class System:
    """One way of running a training step, with its own student copy and optimizer."""

    def __init__(
        self, name, student, models, make_batch, config: DistillConfig, freeze_tokens=False, label_logits=True
    ):
        self.name, self.make_batch, self.seconds, self.samples = name, make_batch, 0.0, 0
        self.label_logits = label_logits
        self.student = copy.deepcopy(student).train()
        self.student.model.decoder.embed_tokens.requires_grad_(not freeze_tokens)
        self.models = Models(self.student, *models)
        self.optimizer, _ = make_optimizer(self.student, config, total=1000)

    def step(self, indices: list[int], timed: bool) -> None:
        started = time.perf_counter()
        batch = self.make_batch(indices)
        terms = batch_losses(self.student, self.models, batch, LossWeights(), self.label_logits)
        terms.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if timed:
            self.seconds += time.perf_counter() - started
            self.samples += len(indices)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher", default="bundled:tiny.en")
    parser.add_argument("--manifest", type=Path, default=speechkd_home() / "data/fotaq/train.jsonl")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per system (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--topk", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    quiet_transformers()

    work = Path(tempfile.mkdtemp(prefix="train-throughput-"))
    create_student(CreateStudentConfig(teacher=args.teacher, output_dir=str(work / "student")))
    student, processor = load_model(str(work / "student"), device="cpu")
    student.model.encoder.requires_grad_(False)
    student.model.decoder.embed_positions.requires_grad_(False)
    teacher, _ = load_model(args.teacher, device="cpu")
    teacher.requires_grad_(False)
    config = DistillConfig(
        teacher=args.teacher, student=str(work / "student"), train_manifest=str(args.manifest),
        output_dir=str(work), batch_size=args.batch_size, teacher_topk=args.topk,
    )  # fmt: skip

    n = args.batch_size * (args.steps + 1)
    records = [r | {"teacher_text": r["text"]} for r in read_manifest(args.manifest)[:n]]
    multilingual = bool(getattr(student.generation_config, "is_multilingual", False))
    prompt = make_prompt(processor.tokenizer, multilingual, "en" if multilingual else None)
    examples, _ = training_examples(records, processor.tokenizer, lambda _: prompt, "teacher_text", 448)
    audios = [load_audio(e.audio) for e in examples]
    features = processor.feature_extractor(
        audios, sampling_rate=SAMPLE_RATE, return_tensors="pt"
    ).input_features
    labels_only = Collator(examples, None, None, None, seed=0, timestamp_probability=0.0)
    labels_only.load_features = lambda chosen: (features[[examples.index(e) for e in chosen]], None)

    cache, teacher_cache = UtteranceCache(work / "encoder"), UtteranceCache(work / "teacher")
    started = time.perf_counter()
    with torch.no_grad():
        states = torch.cat([student.model.encoder(features[i : i + 8])[0] for i in range(0, n, 8)])
    for example, state, audio in zip(examples, states, audios):
        cache.put(example.key, {"encoder_states": state.half().clone(), "duration": len(audio) / SAMPLE_RATE})
    encoder_fill = (time.perf_counter() - started) / n
    started = time.perf_counter()
    shared = Models(student, teacher, processor, True, [])
    fill_teacher_cache(shared, config, examples, cache, teacher_cache, torch.device("cpu"), progress=False)
    teacher_fill = (time.perf_counter() - started) / n
    rest = [teacher_cache.get(teacher_key(e, e.sequence(False)[0]))["rest"].float().exp() for e in examples]
    rest = torch.cat(rest)
    cached = Collator(examples, cache, None, None, seed=0, timestamp_probability=0.0)
    cached_topk = Collator(examples, cache, teacher_cache, None, seed=0, timestamp_probability=0.0)

    pad = prompt.end
    systems = [
        System("reference (448, own encoders)", student, (teacher, processor, False, []),
               lambda ix: pad_to(labels_only(ix), 448, pad), config, label_logits=False),
        System("+ teacher reuses encoder", student, (teacher, processor, True, []),
               lambda ix: pad_to(labels_only(ix), 448, pad), config, label_logits=False),
        System("+ dynamic padding", student, (teacher, processor, True, []), labels_only, config,
               label_logits=False),
        System("+ vocabulary projection at label tokens only", student, (teacher, processor, True, []),
               labels_only, config),
        System("speechkd default (+ encoder cache)", student, (teacher, processor, True, []), cached, config),
        System(f"+ teacher top-{args.topk} cache", student, (teacher, processor, True, []), cached_topk, config),
        System("+ --freeze-embed-tokens (fewer weights to train)", student, (teacher, processor, True, []),
               cached_topk, config, freeze_tokens=True),
    ]  # fmt: skip
    batches = [list(range(i, i + args.batch_size)) for i in range(0, n, args.batch_size)]
    for round_index, indices in enumerate(batches):
        order = systems[round_index % len(systems) :] + systems[: round_index % len(systems)]
        for system in order:
            system.step(indices, timed=round_index > 0)
    report(systems, encoder_fill, teacher_fill, args)
    print(
        f"teacher probability outside its top-{args.topk} at T=2: mean {rest.mean():.4f}, max {rest.max():.4f}"
    )


def report(systems: list[System], encoder_fill: float, teacher_fill: float, args) -> None:
    base = systems[0].samples / systems[0].seconds
    print(f"\nteacher {args.teacher}, 2-layer student, batch {args.batch_size}, {args.steps} timed steps each, "
          f"{args.threads} threads")  # fmt: skip
    print("\n| step | samples/s | speed-up |\n|---|---|---|")
    for system in systems:
        rate = system.samples / system.seconds
        print(f"| {system.name} | {rate:.2f} | {rate / base:.2f}x |")
    print(
        f"\none-time costs: encoder cache {encoder_fill:.2f} s/utt, teacher top-k cache {teacher_fill:.2f} s/utt"
    )
    default_step = next(s for s in systems if s.name.startswith("speechkd default"))
    for epochs in (1, 3, 10):
        default = default_step.samples / default_step.seconds
        ratio = (epochs / base) / (encoder_fill + epochs / default)
        print(f"wall-time speed-up over {epochs} epoch(s), encoder cache fill included: {ratio:.2f}x")


if __name__ == "__main__":
    main()
