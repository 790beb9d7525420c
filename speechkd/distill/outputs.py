"""Stage 3 outputs: resumable checkpoints, student/draft exports, metrics (JSONL + TensorBoard) and plots."""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from speechkd.config import ConfigError
from speechkd.files import atomic_write_json

CHECKPOINTS = "checkpoints"
METRICS_FILE = "metrics.jsonl"


# ---------------------------------------------------------------------------- checkpoints


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first (a checkpoint folder appears only once it is complete)."""
    folder = output_dir / CHECKPOINTS
    found = [p for p in folder.glob("step-*") if (p / "state.pt").is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def prepare_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an earlier run unless told (RESUME continues it, or starts one where there is none);
    with OVERWRITE, clear it (the caches stay)."""
    checkpoints = checkpoint_dirs(output_dir)
    if overwrite:
        for name in (CHECKPOINTS, "final", "best", "draft", "tensorboard", METRICS_FILE, "metrics.json"):
            path = output_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    elif not resume and (checkpoints or (output_dir / "final").exists()):
        raise FileExistsError(
            f"{output_dir} holds an earlier run: --resume continues it, --overwrite restarts"
        )


def check_resumable(saved: dict, config: dict, world: int, run_defining: Sequence[str]) -> None:
    """Refuse to resume with settings that change what the run computes."""
    changed = [k for k in run_defining if saved["config"].get(k) != config.get(k)]
    if saved["world_size"] != world:
        changed.append(f"number of processes ({saved['world_size']} -> {world})")
    if changed:
        raise ConfigError(f"--resume: the run was started with other settings: {', '.join(changed)}")


def rng_state() -> dict:
    """Every generator's state, in types `torch.load(weights_only=True)` reads (numpy's keys as a tensor)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss)
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights training changes; frozen ones are reloaded from the initial student on resume."""
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(accelerator, output_dir: Path, step: int, state: dict, keep: int) -> Path:
    """Write checkpoints/step-N (state.pt from the main process, rng-RANK.pt from each) atomically."""
    folder = output_dir / CHECKPOINTS
    staging = folder / f".step-{step}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(rng_state(), staging / f"rng-{accelerator.process_index}.pt")
    if accelerator.is_main_process:
        torch.save(state, staging / "state.pt.partial")
        os.replace(staging / "state.pt.partial", staging / "state.pt")
    accelerator.wait_for_everyone()
    target = folder / f"step-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        for old in checkpoint_dirs(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return target


def load_checkpoint(folder: Path, rank: int) -> tuple[dict, dict | None]:
    """(the run state, this process's RNG state) of a checkpoint folder."""
    state = torch.load(folder / "state.pt", weights_only=True)
    rng_file = folder / f"rng-{rank}.pt"
    return state, torch.load(rng_file, weights_only=True) if rng_file.exists() else None


# ---------------------------------------------------------------------------- exports


def decoder_only_draft(model):
    """A WhisperForCausalLM holding the student's decoder: a draft for speculative decoding with the teacher.

    It reads the main model's encoder output, so it fits a teacher whose encoder the student kept frozen.
    """
    from transformers import WhisperForCausalLM

    config = copy.deepcopy(model.config)
    draft = WhisperForCausalLM(config).to(model.dtype)
    decoder_state = {k: v for k, v in model.state_dict().items() if k.startswith("model.decoder.")}
    missing, unexpected = draft.load_state_dict(decoder_state, strict=False)
    if unexpected or set(missing) - {"proj_out.weight"}:
        raise RuntimeError(f"draft export: missing {missing}, unexpected {unexpected}")
    draft.tie_weights()
    draft.generation_config = copy.deepcopy(model.generation_config)
    return draft.eval()


# ---------------------------------------------------------------------------- metrics


class MetricsLog:
    """metrics.jsonl (one JSON object a line) plus TensorBoard scalars when tensorboard is installed."""

    def __init__(self, output_dir: Path, resume_step: int | None, enabled: bool):
        self.path = output_dir / METRICS_FILE
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        self._truncate_after(resume_step)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print(
                "speechkd distill: tensorboard is not installed, so metrics go to metrics.jsonl only "
                "(pip install tensorboard to get TensorBoard logs)",
                file=sys.stderr,
            )
        else:
            self.writer = SummaryWriter(str(output_dir / "tensorboard"))

    def _truncate_after(self, step: int | None) -> None:
        # on resume, rows logged after the checkpoint are replayed, so they are dropped first
        if not self.path.exists():
            return
        rows = self.rows()
        kept = [r for r in rows if step is not None and r.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line]

    def log(self, row: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for name, value in row.items():
                if name != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(name, value, row["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def plot_curves(output_dir: Path, rows: list[dict]) -> list[Path]:
    """loss.png (training loss terms) and wer.png (eval WER, teacher as reference) from the metrics rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    train = [r for r in rows if "loss" in r]
    if train:
        figure, axis = plt.subplots(figsize=(6, 4))
        for name in ("loss", "ce", "kl", "mse"):
            if any(r.get(name) for r in train):
                axis.plot([r["step"] for r in train], [r[name] for r in train], label=name)
        axis.set(xlabel="step", ylabel="loss", title="training loss", yscale="log")
        axis.legend()
        written.append(_save(figure, output_dir / "loss.png"))
    evals = [r for r in rows if "eval_wer" in r]
    if evals:
        figure, axis = plt.subplots(figsize=(6, 4))
        axis.plot([r["step"] for r in evals], [100 * r["eval_wer"] for r in evals], "o-", label="student")
        teacher = [r["teacher_wer"] for r in rows if "teacher_wer" in r]
        if teacher:
            axis.axhline(100 * teacher[-1], linestyle="--", color="gray", label="teacher")
        axis.set(xlabel="step", ylabel="WER (%)", title="dev WER (normalised)")
        axis.legend()
        written.append(_save(figure, output_dir / "wer.png"))
    return written


def _save(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    temp = path.with_name(f".{path.name}.tmp.png")
    figure.tight_layout()
    figure.savefig(temp, dpi=100)
    plt.close(figure)
    os.replace(temp, path)
    return path


def write_summary(output_dir: Path, summary: dict) -> None:
    atomic_write_json(output_dir / "metrics.json", summary)
