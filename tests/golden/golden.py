"""Golden ``summary.json`` numbers of the smoke and default runs, recorded before the refactoring of the code base,
so that moving code is shown to change no number.

``flatten_numbers(summary)`` -> ``{"a/b/0/c": value}`` for every numeric leaf (bools excluded) outside
:data:`IGNORED` (timings, paths, ids, cache counters: they differ between runs of the same code). ``compare`` is
exact on the machine that recorded the values (same CPU model, torch version and thread count) and otherwise exact
for integers with a 1e-6 relative tolerance for floats (torch's CPU kernels may round differently elsewhere).
"""

from __future__ import annotations

import json
import math
import platform
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: key paths (regular expressions on the ``/``-joined path) whose values are not results of the computation
IGNORED = [r"^run/", r"^accounting/(detect|embed|pad)_(cached|computed)$", r"(^|/)wall_time_s$",
           r"(^|/)scoring_time_s$",
           # blocks added after the recording (new results, not moved code): per-presentation rates and the flow
           r"^presentations/", r"^flow/",
           # added after the recording: the PAD context check (derived from the boxes, changes no score)
           r"^accounting/pad_context_clamped$", r"^accounting/pad_context_clamped_share$",
           # added after the recording: JPEGs read reduced for runtime.decode_long_side (none in NUAA)
           r"^accounting/decoded_bounded$"]


def flatten_numbers(x, prefix: str = "") -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    if isinstance(x, dict):
        for k, v in x.items():
            out.update(flatten_numbers(v, f"{prefix}{k}/"))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out.update(flatten_numbers(v, f"{prefix}{i}/"))
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        key = prefix[:-1]
        if not any(re.search(p, key) for p in IGNORED):
            out[key] = x
    return out


def machine() -> dict[str, str]:
    import torch

    cpu = ""
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": cpu or platform.processor(), "torch": torch.__version__, "threads": str(torch.get_num_threads())}


def record(summary: dict, name: str) -> Path:
    path = HERE / f"{name}_summary_numbers.json"
    path.write_text(json.dumps({"machine": machine(), "numbers": flatten_numbers(summary)}, indent=1, sort_keys=True))
    return path


def compare(summary: dict, name: str) -> list[str]:
    """Every difference between ``summary``'s numbers and the recorded ones (empty: identical)."""
    g = json.loads((HERE / f"{name}_summary_numbers.json").read_text())
    want, got = g["numbers"], flatten_numbers(summary)
    exact = g["machine"] == machine()
    diffs = [f"missing {k}" for k in sorted(set(want) - set(got))]
    diffs += [f"new {k} = {got[k]!r}" for k in sorted(set(got) - set(want))]
    for k in sorted(set(want) & set(got)):
        a, b = want[k], got[k]
        same = a == b if exact or isinstance(a, int) and isinstance(b, int) else math.isclose(a, b, rel_tol=1e-6,
                                                                                               abs_tol=1e-12)
        if not same:
            diffs.append(f"{k}: recorded {a!r}, now {b!r}")
    return diffs
