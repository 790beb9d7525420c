"""What the timed passes of `speechkd evaluate` hold: per system, per utterance, what was decoded and how fast."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Pass:
    """One timed pass: every system decoded the same batches, in rotating order, at one batch size."""

    batch_size: int
    utterances: list[int]  # indices into the evaluated utterances, in decoding order
    systems: dict[str, dict[int, dict]]  # system name -> utterance index -> measurement
    seconds: dict[str, float]  # system name -> total compute seconds
    targets: dict[str, str | None] = field(default_factory=dict)  # "speculative" -> its plain teacher


@dataclass
class Passes:
    """The main pass at the configured batch size, and the batch-size-1 pass (latency, speculative) if any."""

    main: Pass
    at_one: Pass | None = None

    def of(self, name: str) -> Pass:
        """The pass where NAME ran at its own batch size: the speculative system runs only at batch size 1."""
        if name == "speculative" and self.at_one is not None:
            return self.at_one
        return self.main

    def latency(self) -> Pass | None:
        """The pass timed at batch size 1, if any."""
        if self.at_one is not None:
            return self.at_one
        return self.main if self.main.batch_size == 1 else None
