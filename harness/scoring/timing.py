"""Per-stage wall-clock seconds of the batched scoring engine (``profile``), synchronised on CUDA."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch


class StageTimer:
    """``with timer("detect"): ...`` adds the block's seconds to ``profile["detect_s"]``; no-op without a
    profile dict."""

    def __init__(self, profile: dict | None, device: torch.device):
        self.profile, self.cuda = profile, device.type == "cuda"

    @contextmanager
    def __call__(self, stage: str):
        if self.profile is None:
            yield
            return
        if self.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        yield
        if self.cuda:
            torch.cuda.synchronize()
        key = f"{stage}_s"
        self.profile[key] = self.profile.get(key, 0.0) + time.perf_counter() - t0
