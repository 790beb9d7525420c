"""Stage 3, distil: train the student on the teacher's pseudo-labels (cross-entropy + T²·KL to the teacher).

`distill(DistillConfig(...))` runs it: config, data (examples, batches), setup (models, caches), loop, outputs.
"""

from speechkd.distill.config import DistillConfig

__all__ = ["DistillConfig", "distill"]


def __getattr__(name: str):
    if name == "distill":  # the training loop imports torch: only when it runs, not to read a config
        from speechkd.distill.loop import distill

        return distill
    raise AttributeError(f"module 'speechkd.distill' has no attribute {name!r}")
