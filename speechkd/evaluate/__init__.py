"""Stage 4, evaluate: WER and speed of the student against the teacher, and the student as a speculative draft.

`evaluate(EvaluateConfig(...))` runs it: engines decode, passes time them, results/scoring/report write the numbers.
"""

from speechkd.evaluate.config import EvaluateConfig
from speechkd.evaluate.passes import evaluate

__all__ = ["EvaluateConfig", "evaluate"]
