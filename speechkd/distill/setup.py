"""Stage 3 set-up: student and teacher (frozen parts, shared encoder), examples, and the frozen-model caches."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from speechkd.audio import SAMPLE_RATE
from speechkd.config import ConfigError
from speechkd.distill.config import DistillConfig
from speechkd.distill.data import (
    Example,
    evaluation_examples,
    load_clips,
    make_prompt,
    pad_sequences,
    teacher_key,
    training_examples,
)
from speechkd.encoder_cache import (
    UtteranceCache,
    encoder_cache_folder,
    encoder_entry,
    fill_cache,
    fingerprint,
)
from speechkd.encoder_window import window_of
from speechkd.losses import topk_targets
from speechkd.manifest import read_manifest
from speechkd.models import load_model, resolve_model
from speechkd.options import DEFAULT_DTYPE


@dataclass
class Models:
    """The student (trained), the teacher (frozen) and how they share work."""

    student: torch.nn.Module
    teacher: torch.nn.Module | None
    processor: object
    shared_encoder: bool  # the teacher reads the student's (frozen, identical) encoder output
    layer_pairs: list[tuple[int, int]]  # (student layer, teacher layer) for hidden-state matching


# ---------------------------------------------------------------------------- models


def load_models(config: DistillConfig, device: torch.device, mixed_precision: str) -> Models:
    """Student in training mode (encoder / positions frozen as configured) and the frozen teacher."""
    student, processor = load_model(config.student, device=device)
    teacher = None
    if config.kl_weight or config.mse_weight:
        teacher_dtype = "bfloat16" if mixed_precision == "bf16" else DEFAULT_DTYPE
        teacher, _ = load_model(config.teacher, device=device, dtype=teacher_dtype)
        teacher.requires_grad_(False)
        if teacher.config.vocab_size != student.config.vocab_size:
            raise ConfigError(
                "teacher and student vocabularies differ: the student must come from the teacher"
            )
    if config.freeze_encoder and window_of(student) == "audio":
        raise ConfigError(
            f"distill: {config.student} encodes audio-length windows (create-student --encoder-window audio), "
            "which its encoder has to learn: set freeze_encoder: false (--no-freeze-encoder)"
        )
    student.requires_grad_(True)
    if config.freeze_encoder:
        student.model.encoder.requires_grad_(False)
    if config.freeze_embed_positions:
        student.model.decoder.embed_positions.requires_grad_(False)
    if config.freeze_embed_tokens:
        student.model.decoder.embed_tokens.requires_grad_(False)  # and proj_out, tied to it
    if config.gradient_checkpointing:
        student.activation_checkpointing_enable({"use_reentrant": False})
    shared = teacher is not None and config.freeze_encoder and _same_weights(student, teacher)
    pairs = _layer_pairs(config) if config.mse_weight else []
    return Models(student.train(), teacher, processor, shared, pairs)


def _same_weights(student, teacher) -> bool:
    a, b = student.model.encoder.state_dict(), teacher.model.encoder.state_dict()
    # a bf16 teacher holds a rounded copy of the same weights: compare at the teacher's precision
    return a.keys() == b.keys() and all(torch.equal(a[k].to(b[k].dtype), b[k]) for k in a)


def _layer_pairs(config: DistillConfig) -> list[tuple[int, int]]:
    provenance = Path(resolve_model(config.student)) / "speechkd.json"
    layer_map = json.loads(provenance.read_text()).get("decoder_layer_map") if provenance.exists() else None
    if not layer_map:
        raise ConfigError(
            f"hidden-state matching needs the student's layer map in {provenance} (create-student)"
        )
    return list(enumerate(layer_map))


def make_optimizer(student, config: DistillConfig, total: int):
    """AdamW without weight decay on biases and norms, and the warm-up + linear/constant schedule."""
    from transformers import get_scheduler

    decay, no_decay = [], []
    for name, p in student.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-8)
    name = "linear" if config.lr_schedule == "linear" else "constant_with_warmup"
    return optimizer, get_scheduler(
        name, optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=total
    )


# ---------------------------------------------------------------------------- data and caches


@dataclass
class TrainingData:
    """Usable examples, the caches the batches read, and what was filtered out (for the log)."""

    train: list[Example]
    evaluation: list[Example]
    cache: UtteranceCache | None  # None: no encoder cache, audio is read every step
    teacher_cache: UtteranceCache | None
    report: dict


def prepare_data(config: DistillConfig, models: Models, accelerator) -> TrainingData:
    """Examples from the manifests; encoder (and teacher) caches filled once; unreadable audio dropped."""
    train, evaluation, report = _examples(config, models)
    root = Path(config.encoder_cache_dir or Path(config.output_dir) / "cache")
    cache = _open(config, encoder_cache_folder(root, *_encoder_parts(config, models)))
    rank, world = accelerator.process_index, accelerator.num_processes
    shard = slice(rank, None, world) if cache.folder is not None else slice(None)
    everything = train + evaluation
    compute = _encoder_entries(models, config, accelerator.device, root)
    if config.encoder_cache == "none":  # only check that the audio loads
        compute = _durations_only
    progress = config.progress and accelerator.is_local_main_process
    fill_cache(everything[shard], cache, compute, load_clips, config.batch_size, "encoder cache", progress)
    accelerator.wait_for_everyone()
    failed = [e for e in everything if cache.failure(e.key) is not None]
    for example in failed[:5]:
        accelerator.print(f"skipping: {cache.failure(example.key)}")
    train = [e for e in train if cache.failure(e.key) is None]
    evaluation = [e for e in evaluation if cache.failure(e.key) is None]
    if window_of(models.student) == "audio":  # the sampler batches by window, so it needs every duration
        for example in train:
            example.duration = cache.duration(example.key)
    report |= {"audio_errors": len(failed), "train_examples": len(train), "eval_examples": len(evaluation)}
    if not train:
        raise ConfigError(f"{config.train_manifest}: no training utterance has readable audio")
    teacher_cache = None
    if config.teacher_topk:
        name = fingerprint(models.teacher, f"T={config.temperature} k={config.teacher_topk}")
        teacher_cache = _open(config, root / f"teacher-{name}")
        fill_teacher_cache(models, config, train[shard], cache, teacher_cache, accelerator.device, progress)
        accelerator.wait_for_everyone()
    return TrainingData(
        train, evaluation, None if config.encoder_cache == "none" else cache, teacher_cache, report
    )


def _open(config: DistillConfig, folder: Path) -> UtteranceCache:
    return UtteranceCache(folder if config.encoder_cache == "disk" else None)


def _encoder_parts(config: DistillConfig, models: Models) -> list:
    parts = [models.student.model.encoder if config.freeze_encoder else "features"]
    if models.teacher is not None and not models.shared_encoder:
        parts.append(models.teacher.model.encoder)
    return parts


def _durations_only(examples: Sequence[Example], audios: list) -> list[dict]:
    return [encoder_entry(len(audio) / SAMPLE_RATE) for audio in audios]


def _examples(config: DistillConfig, models: Models) -> tuple[list[Example], list[Example], dict]:
    student = models.student
    multilingual = bool(getattr(student.generation_config, "is_multilingual", False))
    prompts = {}

    def prompt_for(language: str | None):
        language = language or config.language
        if language not in prompts:
            prompts[language] = make_prompt(models.processor.tokenizer, multilingual, language, config.task)
        return prompts[language]

    records = read_manifest(config.train_manifest)
    if not records:
        raise ConfigError(f"{config.train_manifest}: the training manifest has no rows")
    max_positions = student.config.max_target_positions
    train, skipped = training_examples(
        records,
        models.processor.tokenizer,
        prompt_for,
        config.label_field,
        max_positions,
        config.prompt_max_tokens,
    )
    if not train:
        raise ConfigError(f"{config.train_manifest}: no usable rows out of {len(records)}: {dict(skipped)}")
    evaluation, eval_skipped = [], {}
    if config.eval_manifest:
        evaluation, eval_skipped = evaluation_examples(read_manifest(config.eval_manifest))
        evaluation = evaluation[: config.eval_max_utterances]
        if not evaluation:
            raise ConfigError(f"{config.eval_manifest}: no rows with a `text` reference to evaluate on")
    report = {"train_rows": len(records), "train_skipped": dict(skipped), "eval_skipped": dict(eval_skipped)}
    return train, evaluation, report


def _encoder_entries(models: Models, config: DistillConfig, device: torch.device, root: Path):
    """The function that fills the encoder cache: a frozen encoder's output, or else the log-mel features.

    A teacher that reads its own encoder output takes it from `pseudo-label --encoder-cache-dir ROOT` where
    that run kept it, instead of encoding the audio again.
    """
    teacher_outputs = None
    if models.teacher is not None and not models.shared_encoder and config.encoder_cache == "disk":
        teacher_outputs = UtteranceCache(encoder_cache_folder(root, models.teacher.model.encoder))

    @torch.no_grad()
    def compute(examples: Sequence[Example], audios: list) -> list[dict]:
        extractor = models.processor.feature_extractor
        features = extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features.to(device)
        parts = {}
        if config.freeze_encoder:
            parts["encoder_states"] = models.student.model.encoder(features).last_hidden_state
        else:
            parts["features"] = features
        if models.teacher is not None and not models.shared_encoder:
            parts["teacher_states"] = _teacher_states(models.teacher, features, examples, teacher_outputs)
        return [
            encoder_entry(len(audio) / SAMPLE_RATE, **{name: tensor[i] for name, tensor in parts.items()})
            for i, audio in enumerate(audios)
        ]

    return compute


def _teacher_states(
    teacher, features: torch.Tensor, examples: Sequence[Example], known: UtteranceCache | None
):
    """The teacher's encoder output for a batch: from KNOWN (pseudo-labelling's cache) where there, else computed."""
    found = [
        known.get(e.key)["encoder_states"] if known is not None and e.key in known else None for e in examples
    ]
    missing = [i for i, states in enumerate(found) if states is None]
    if missing:
        computed = teacher.model.encoder(features[missing].to(teacher.dtype))[0]
        for row, i in enumerate(missing):
            found[i] = computed[row]
    return torch.stack([states.to(features.device, teacher.dtype) for states in found])


def _sequences_to_cache(example: Example, config: DistillConfig) -> list[tuple[list[int], int]]:
    """The decoder inputs an example can get: with or without timestamps, with or without the previous text."""
    return [
        example.sequence(timestamps, previous)
        for timestamps in _draws(config.timestamp_probability, example.has_timestamps)
        for previous in _draws(config.prompt_probability, bool(example.previous_ids))
    ]


def _draws(probability: float, possible: bool) -> list[bool]:
    """The outcomes a Bernoulli(PROBABILITY) draw can have when the option is POSSIBLE."""
    outcomes = [False] if probability < 1 or not possible else []
    return outcomes + [True] if probability > 0 and possible else outcomes


@torch.no_grad()
def fill_teacher_cache(models, config, examples, cache, teacher_cache, device, progress) -> None:
    """Run the teacher once per (utterance, decoder input) and keep its top-k tempered log-probs."""
    todo = [
        (e, s)
        for e in examples
        for s in _sequences_to_cache(e, config)
        if teacher_key(e, s[0]) not in teacher_cache
    ]
    state_name = "encoder_states" if models.shared_encoder else "teacher_states"
    for start in tqdm(range(0, len(todo), config.batch_size), desc="teacher cache", disable=not progress):
        chunk = todo[start : start + config.batch_size]
        inputs, labels = pad_sequences([s for _, s in chunk], chunk[0][0].prompt.end)
        states = torch.stack([cache.get(e.key)[state_name] for e, _ in chunk]).to(
            device, models.teacher.dtype
        )
        logits = models.teacher(encoder_outputs=(states,), decoder_input_ids=inputs.to(device)).logits
        targets = topk_targets(logits, labels.to(device), config.temperature, config.teacher_topk)
        offset = 0
        for (example, sequence), n in zip(chunk, (labels != -100).sum(1).tolist()):
            rows = slice(offset, offset + n)
            offset += n
            entry = {
                "ids": targets.token_ids[rows].int().cpu(),
                "logprobs": targets.logprobs[rows].half().cpu(),
            }
            entry["rest"] = targets.rest_logprob[rows].half().cpu()
            teacher_cache.put(teacher_key(example, sequence[0]), entry)
