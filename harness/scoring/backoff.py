"""Batch-size back-off on CUDA out-of-memory for the batched scoring engine: a stage's batch size halves until
its slice fits (the smaller size sticks for the rest of the run)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

log = logging.getLogger("harness.scoring")


@dataclass
class BackOff:
    """Runs ``fn(start, stop)`` over ``[0, n)`` in slices of ``size``; on CUDA out-of-memory halves ``size`` and
    retries the slice (the smaller size sticks for the rest of the run). Gives up at size 1."""

    stage: str
    size: int
    events: list = field(default_factory=list)

    def run(self, fn, n: int) -> list:
        out, s = [], 0
        while s < n:
            bs = min(self.size, n - s)
            oom = False
            try:
                out.append(fn(s, s + bs))
                s += bs
            except torch.cuda.OutOfMemoryError:
                if bs <= 1:
                    raise
                oom = True
            if oom:  # outside the except block, so the failed batch's tensors can be freed
                self.size = max(1, bs // 2)
                self.events.append({"stage": self.stage, "from": bs, "to": self.size})
                log.warning("%s: CUDA out of memory at batch size %d; retrying at %d", self.stage, bs, self.size)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        return out
