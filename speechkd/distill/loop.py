"""Stage 3: distil the teacher into the student on pseudo-labels (CE + T²·KL), on `accelerate`.

Read top to bottom: config, models, data and caches, the loss of one batch, evaluation, the loop.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from tqdm.auto import tqdm

from speechkd.config import ConfigError, config_to_dict
from speechkd.decoding import DecodingOptions, decode_short_form, length_grouped_batches, utterance_duration
from speechkd.distill.config import RUN_DEFINING, DistillConfig, check_inputs
from speechkd.distill.data import Batch, Collator, epoch_batches, load_clips, micro_batches
from speechkd.distill.outputs import (
    MetricsLog,
    check_resumable,
    checkpoint_dirs,
    decoder_only_draft,
    load_checkpoint,
    plot_curves,
    prepare_output_dir,
    save_checkpoint,
    set_rng_state,
    trainable_state,
    write_summary,
)
from speechkd.distill.setup import Models, load_models, make_optimizer, prepare_data
from speechkd.encoder_window import cut_features, window_frames, window_of
from speechkd.files import atomic_write_text, save_model_dir
from speechkd.losses import LossTerms, LossWeights, distillation_loss, hidden_state_mse, label_mask
from speechkd.models import pick_device
from speechkd.text import normalised_word_errors

# ---------------------------------------------------------------------------- one batch


def batch_losses(
    student, models: Models, batch: Batch, weights: LossWeights, label_logits_only: bool = True
) -> LossTerms:
    """Student forward, teacher forward on exactly the same decoder inputs (unless cached), loss terms.

    LABEL_LOGITS_ONLY=False projects every position to the vocabulary, as the reference scripts do (benchmarks).
    """
    hidden = bool(models.layer_pairs)
    if batch.encoder_states is None and batch.features is not None and not _frozen(models.student):
        # a trainable encoder runs inside the (possibly DDP-wrapped) student, on its window of the features
        features = batch.features
        if batch.durations:
            features = cut_features(models.student, features, max(batch.durations))
        encoder_inputs = {"input_features": features.to(models.student.dtype)}
    else:
        states = batch.encoder_states
        if states is None:
            with torch.no_grad():
                states = models.student.model.encoder(batch.features.to(models.student.dtype))[0]
        encoder_inputs = {"encoder_outputs": (states.to(models.student.dtype),)}
    mask = label_mask(batch.labels)
    if not label_logits_only:
        mask = torch.ones_like(mask)  # every position projected; the losses still skip prompt and padding
    with logits_at(models.student, mask):
        out = student(
            **encoder_inputs,
            decoder_input_ids=batch.decoder_input_ids,
            output_hidden_states=hidden,
            use_cache=False,
        )
    teacher_out = None
    if batch.teacher_topk is None and models.teacher is not None:
        with logits_at(models.teacher, mask):
            teacher_out = _teacher_forward(models, batch, out.encoder_last_hidden_state, hidden)
    mse = None
    if hidden:
        mse = hidden_state_mse(
            out.decoder_hidden_states, teacher_out.decoder_hidden_states, models.layer_pairs, batch.labels
        )
    return distillation_loss(
        out.logits,
        batch.labels[mask],
        weights,
        teacher_logits=teacher_out.logits if teacher_out is not None else None,
        teacher_topk=batch.teacher_topk,
        mse=mse,
    )


@contextmanager
def logits_at(model, mask: torch.Tensor):
    """MODEL's forward returns logits only at MASK ([B, L] -> [n, vocab], row-major), the real label tokens.

    The vocabulary projection (and the float32 softmaxes after it) is most of a small decoder's step; prompt
    and padding positions carry no loss, so they are not projected at all.
    """
    handle = model.proj_out.register_forward_pre_hook(lambda _, args: (args[0][mask],))
    try:
        yield
    finally:
        handle.remove()


def _frozen(student) -> bool:
    return not any(p.requires_grad for p in student.model.encoder.parameters())


@torch.no_grad()
def _teacher_forward(models: Models, batch: Batch, student_states: torch.Tensor, hidden: bool):
    teacher = models.teacher
    if models.shared_encoder:
        states = student_states.detach()
    elif batch.teacher_states is not None:
        states = batch.teacher_states
    else:
        states = teacher.model.encoder(batch.features.to(teacher.dtype))[0]
    return teacher(
        encoder_outputs=(states.to(teacher.dtype),),
        decoder_input_ids=batch.decoder_input_ids,
        output_hidden_states=hidden,
        use_cache=False,
    )


# ---------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model, processor, examples, cache, options: DecodingOptions, state_name: str | None) -> dict:
    """Normalised WER of MODEL on EXAMPLES through speechkd's decoding loop (cached encoder output if given)."""
    was_training = model.training
    model.eval()
    found, failed = {}, 0
    durations = [utterance_duration({"audio": e.audio}) for e in examples]
    # batches as `speechkd evaluate` forms them: similar lengths, one encoder window each (an audio-window
    # student would otherwise decode a manifest-order batch window by window, in many small calls)
    for batch in length_grouped_batches(durations, options.batch_size, model):
        loaded, audios, errors = load_clips([examples[i] for i in batch])
        failed += len(errors)
        if not loaded:
            continue
        states = None
        if cache is not None and state_name is not None:
            states = torch.stack([cache.get(e.key)[state_name] for e in loaded])
        results = decode_short_form(model, processor, audios, options, encoder_states=states)
        found |= {e.id: {"id": e.id, "text": e.text, "hypothesis": r.text} for e, r in zip(loaded, results)}
    model.train(was_training)
    rows = [found[e.id] for e in examples if e.id in found]  # manifest order
    texts = [r["text"] for r in rows]
    wer = normalised_word_errors(texts, [r["hypothesis"] for r in rows], options.language).wer
    return {"wer": wer, "n_utterances": len(rows), "n_failed": failed, "predictions": rows}


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


# ---------------------------------------------------------------------------- the loop


def distill(config: DistillConfig) -> dict:
    """Train the student; write checkpoints, final/, best/, draft/, metrics.jsonl, plots and metrics.json."""
    check_inputs(config)
    trainer = Trainer(config)
    try:
        trainer.run()
    finally:
        trainer.log.close()
    return trainer.finish()


class Trainer:
    """Set-up, optimizer steps, logging, evaluation and checkpoints; the run state is the plain `state` dict."""

    def __init__(self, config: DistillConfig):
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        device = pick_device(config.device)
        precision = config.mixed_precision or ("bf16" if device.type == "cuda" else "no")
        self.accelerator = accelerator = Accelerator(mixed_precision=precision, cpu=device.type == "cpu")
        self.config, self.output_dir, self.stopped = config, Path(config.output_dir), False
        if accelerator.is_main_process:
            prepare_output_dir(self.output_dir, config.resume, config.overwrite)
        accelerator.wait_for_everyone()
        set_seed(config.seed)
        self.models = models = load_models(config, accelerator.device, precision)
        self.data = data = prepare_data(config, models, accelerator)
        accelerator.print(f"distill: {json.dumps(data.report)}; shared encoder: {models.shared_encoder}")
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        self.windows = None  # an audio-window student trains each utterance on its own window
        if window_of(models.student) == "audio":
            self.windows = [window_frames(models.student, e.duration) for e in data.train]
        self.per_epoch = len(
            epoch_batches(len(data.train), config.batch_size, 0, 0, self.rank, self.world, self.windows)
        )
        self.total = config.max_steps or math.ceil(
            config.epochs * self.per_epoch / config.gradient_accumulation_steps
        )
        optimizer, self.scheduler = make_optimizer(models.student, config, self.total)
        self.student, self.optimizer = accelerator.prepare(models.student, optimizer)
        models.student = accelerator.unwrap_model(self.student)
        self.state = {"step": 0, "position": (0, 0), "best_wer": None, "best_step": None, "seconds": 0.0}
        checkpoints = checkpoint_dirs(self.output_dir) if config.resume else []
        if checkpoints:
            self._restore(checkpoints[-1])
        resumed_at = self.state["step"] if checkpoints else None
        self.log = MetricsLog(self.output_dir, resumed_at, accelerator.is_main_process)
        self.collator = Collator(
            data.train, data.cache, data.teacher_cache, models.processor.feature_extractor,
            config.seed, config.timestamp_probability, prompt_probability=config.prompt_probability,
        )  # fmt: skip
        self.options = config.evaluation_decoding()

    def _restore(self, folder: Path) -> None:
        saved, rng = load_checkpoint(folder, self.rank)
        check_resumable(saved, config_to_dict(self.config), self.world, RUN_DEFINING)
        missing, unexpected = self.models.student.load_state_dict(saved["student"], strict=False)
        trainable = {n for n, p in self.models.student.named_parameters() if p.requires_grad}
        if unexpected or trainable & set(missing):
            raise ConfigError(f"{folder}: checkpoint does not fit the student ({unexpected or missing})")
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state = saved["state"]
        if rng is not None:
            set_rng_state(rng)
        self.accelerator.print(f"distill: resumed from {folder} at step {self.state['step']}")

    def run(self) -> None:
        config, state = self.config, self.state
        if state["step"] == 0 and config.eval_at_start and self.data.evaluation:
            self.evaluate(with_teacher=True)
        position = tuple(state["position"])
        batches = micro_batches(
            len(self.data.train), self.collator, config, position, self.rank, self.world, self.windows
        )
        show = config.progress and self.accelerator.is_local_main_process
        bar = tqdm(total=self.total, initial=state["step"], desc="distill", unit="step", disable=not show)
        window: list[tuple[LossTerms, int, float]] = []
        while state["step"] < self.total:
            started = time.perf_counter()
            terms, samples = self.step(batches)
            window.append((terms, samples, time.perf_counter() - started))
            state["seconds"] += window[-1][2]
            state["step"] = step = state["step"] + 1
            rate = len(window) / sum(w[2] for w in window)
            lr = self.scheduler.get_last_lr()[0]
            bar.update(1)
            bar.set_postfix(loss=f"{terms.loss:.3f}", lr=f"{lr:.2e}", steps_per_s=f"{rate:.2f}")
            if step % config.log_steps == 0 or step == self.total:
                self.log_training(window)
                window = []
            if self.data.evaluation and (step % config.eval_steps == 0 or step == self.total):
                self.evaluate()
            if step % (config.save_steps or config.eval_steps) == 0 or step in (
                self.total,
                config.stop_after,
            ):
                self.save()
            if config.stop_after is not None and config.stop_after <= step < self.total:
                self.stopped = True
                break
        bar.close()

    def step(self, batches: Iterator) -> tuple[LossTerms, int]:
        """One optimizer step over `gradient_accumulation_steps` micro-batches."""
        accumulate, device = self.config.gradient_accumulation_steps, self.accelerator.device
        parts, samples = [], 0
        for micro in range(accumulate):
            batch, self.state["position"] = next(batches)
            with nullcontext() if micro == accumulate - 1 else self.accelerator.no_sync(self.student):
                terms = batch_losses(self.student, self.models, batch.to(device), self.config.weights)
                self.accelerator.backward(terms.loss / accumulate)
            parts.append(terms)
            samples += len(batch.ids)
        if self.config.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.student.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        means = [
            sum(float(getattr(p, f).detach()) for p in parts) / len(parts)
            for f in ("loss", "ce", "kl", "mse")
        ]
        return LossTerms(*means, n_tokens=sum(p.n_tokens for p in parts)), samples

    def log_training(self, window: list[tuple[LossTerms, int, float]]) -> None:
        names = ("loss", "ce", "kl", "mse")
        values = torch.tensor([[getattr(t, f) for f in names] for t, _, _ in window]).mean(0)
        values = self.accelerator.reduce(values.to(self.accelerator.device), "mean").tolist()
        seconds, samples = sum(w[2] for w in window), sum(w[1] for w in window)
        epoch, index = self.state["position"]
        self.log.log(
            {
                "step": self.state["step"],
                **dict(zip(names, values)),
                "lr": self.scheduler.get_last_lr()[0],
                "steps_per_s": len(window) / seconds,
                "samples_per_s": samples * self.world / seconds,
                "epoch": epoch + index / self.per_epoch,
            }  # fmt: skip
        )

    def evaluate(self, with_teacher: bool = False) -> None:
        """Score the student (and the teacher, at the start) on the eval set; keep the best student."""
        if self.accelerator.is_main_process:
            step, models = self.state["step"], self.models
            args = (models.processor, self.data.evaluation, self.data.cache, self.options)
            result = evaluate(models.student, *args, "encoder_states" if self.config.freeze_encoder else None)
            row = {"step": step, "eval_wer": result["wer"], "eval_utterances": result["n_utterances"]}
            message = f"step {step}: dev WER {100 * result['wer']:.2f}%"
            if with_teacher and models.teacher is not None:
                states = "encoder_states" if models.shared_encoder else "teacher_states"
                row["teacher_wer"] = evaluate(models.teacher, *args, states)["wer"]
                message += f" (teacher {100 * row['teacher_wer']:.2f}%)"
            self.log.log(row)
            tqdm.write(message)
            atomic_write_text(self.output_dir / "eval_predictions.jsonl", _jsonl(result["predictions"]))
            if self.state["best_wer"] is None or result["wer"] < self.state["best_wer"]:
                self.state["best_wer"], self.state["best_step"] = result["wer"], step
                self._export(self.output_dir / "best", result["wer"])
            plot_curves(self.output_dir, self.log.rows())
        self.accelerator.wait_for_everyone()

    def save(self) -> None:
        checkpoint = {
            "student": trainable_state(self.models.student),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": dict(self.state),
            "config": config_to_dict(self.config),
            "world_size": self.world,
        }
        save_checkpoint(
            self.accelerator, self.output_dir, self.state["step"], checkpoint, self.config.keep_checkpoints
        )

    def _export(self, target: Path, wer: float | None) -> None:
        provenance = {"stage": "distill", "teacher": self.config.teacher, "student_init": self.config.student,
                      "step": self.state["step"], "eval_wer": wer, "config": config_to_dict(self.config)}  # fmt: skip
        save_model_dir(self.models.student, self.models.processor, target, provenance)

    def finish(self) -> dict:
        """Export final/ and draft/ (from best/ when there is one), plots and metrics.json; return the summary."""
        rows = self.log.rows() if self.accelerator.is_main_process else []
        first = {k: v for r in rows if r.get("step") == 0 for k, v in r.items()}
        rates = [r["samples_per_s"] for r in rows if "samples_per_s" in r]
        summary = {
            "steps": self.state["step"], "total_steps": self.total, "stopped_early": self.stopped,
            "train_seconds": round(self.state["seconds"], 1),
            "samples_per_s": round(sum(rates) / len(rates), 3) if rates else None,
            "eval_wer": next((r["eval_wer"] for r in reversed(rows) if "eval_wer" in r), None),
            "best_wer": self.state["best_wer"], "best_step": self.state["best_step"],
            "teacher_wer": first.get("teacher_wer"), "untrained_wer": first.get("eval_wer"),
            "shared_encoder": self.models.shared_encoder, "data": self.data.report,
        }  # fmt: skip
        if self.accelerator.is_main_process and not self.stopped:
            self._export(self.output_dir / "final", summary["eval_wer"])
            source = self.output_dir / ("best" if (self.output_dir / "best").is_dir() else "final")
            draft = decoder_only_draft(type(self.models.student).from_pretrained(source))
            save_model_dir(draft, self.models.processor, self.output_dir / "draft", {"draft_of": str(source)})
            plot_curves(self.output_dir, rows)
            write_summary(self.output_dir, summary)
        self.accelerator.wait_for_everyone()
        return summary
