"""Stage 3, distil: train the student on the teacher's pseudo-labels (cross-entropy + T²·KL to the teacher).

`distill(DistillConfig(...))` runs it: config, data (examples, batches), setup (models, caches), loop, outputs.
"""

from speechkd.distill.config import DistillConfig
from speechkd.distill.loop import distill

__all__ = ["DistillConfig", "distill"]
