"""Interleaved timing for benchmarks on machines that alternate between fast and slow phases.

Absolute times drift by ~2x from one phase to the next, and other processes preempt us, so:
contenders run in rounds; within a round each contender runs `reps` short batches, alternating
with the others (order rotated every round), and the round's figure for it is its fastest batch
(noise only ever adds time). Reported: the median over rounds of those figures, and the median of
per-round ratios, since two contenders timed in one round saw the same phase.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

Batch = Callable[[int], None]  # run the operation n times


@dataclass(frozen=True)
class Result:
    name: str
    per_round: list[float]  # seconds per operation, one entry per round

    @property
    def median(self) -> float:
        return statistics.median(self.per_round)


def calibrate(batch: Batch, target_seconds: float) -> int:
    """A batch size that takes about `target_seconds` (at least 1)."""
    n = 1
    while True:
        start = time.perf_counter()
        batch(n)
        elapsed = time.perf_counter() - start
        if elapsed >= target_seconds / 4 or n >= 1 << 20:
            return max(1, int(n * target_seconds / max(elapsed, 1e-9)))
        n *= 4


def run_rounds(contenders: dict[str, Batch], rounds: int = 15, batch_seconds: float = 0.0015,
               reps: int = 7) -> dict[str, Result]:
    """Time every contender in `rounds` interleaved rounds; one warm-up round is discarded."""
    names = list(contenders)
    sizes = {name: calibrate(contenders[name], batch_seconds) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds + 1):
        order = names[r % len(names):] + names[:r % len(names)]
        # As timeit does: no garbage collection inside a timed batch (one contender's garbage
        # must not be collected on another's time); collect between rounds instead.
        gc.collect()
        gc.disable()
        try:
            best = _round(contenders, order, sizes, reps)
        finally:
            gc.enable()
        if r:
            for name in names:
                times[name].append(best[name])
    return {name: Result(name, times[name]) for name in names}


def _round(contenders: dict[str, Batch], order: list[str], sizes: dict[str, int],
           reps: int) -> dict[str, float]:
    best = dict.fromkeys(order, float("inf"))
    for _ in range(reps):
        for name in order:
            n = sizes[name]
            start = time.perf_counter()
            contenders[name](n)
            best[name] = min(best[name], (time.perf_counter() - start) / n)
    return best


def ratio(a: Result, b: Result) -> float:
    """Median over rounds of a/b (both measured in the same round, so in the same phase)."""
    return statistics.median(x / y for x, y in zip(a.per_round, b.per_round, strict=True))
