"""Stage 4, evaluate: WER and speed of the student against the teacher, and the student as a speculative draft.

`evaluate(EvaluateConfig(...))` runs it: engines decode, passes time them, results/scoring/report write the numbers.
"""

from speechkd.evaluate.config import EvaluateConfig

__all__ = ["EvaluateConfig", "evaluate"]


def __getattr__(name: str):
    if name == "evaluate":  # the passes import torch: only when they run, not to read a config
        from speechkd.evaluate.passes import evaluate

        return evaluate
    raise AttributeError(f"module 'speechkd.evaluate' has no attribute {name!r}")
