"""Splits: the database's official protocol where it has one, else a seeded subject-disjoint dev/eval split.

* :func:`seeded_subject_split` - ``{subject: 'dev'|'eval'}``, the same assignment as the trials builder's
  partition (:func:`harness.protocols.trials.subject_partition`) for the same fraction and seed.
* :func:`find_subject_leaks` - every subject found in more than one split (forbidden by every subject-disjoint
  protocol), each reported with its files per split.
* :func:`check_subject_disjoint` - the same, raising :class:`SubjectLeakError`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.data.common import DatasetProblemsError, format_problems, find_subject_leaks  # noqa: F401  (re-exported)


class SubjectLeakError(DatasetProblemsError):
    """A subject appears in two splits of a protocol that keeps subjects disjoint; names the subject and files."""


def seeded_subject_split(subjects, dev_fraction: float = 0.5, seed: int = 0) -> dict[str, str]:
    """Seeded, subject-disjoint ``dev``/``eval`` split.

    The same assignment as :func:`harness.protocols.trials.subject_partition` (sorted subjects, permuted by
    ``numpy.random.default_rng(seed)``, the first ``round(dev_fraction * n)`` to dev), repeated here so that
    listing a dataset does not import the model stack; a test keeps the two equal.
    """
    if not 0.0 <= float(dev_fraction) <= 1.0:
        raise ValueError(f"dev_fraction must be in [0, 1], got {dev_fraction}")
    subs = sorted(set(subjects))
    order = np.random.default_rng(int(seed)).permutation(len(subs))
    n_dev = int(round(float(dev_fraction) * len(subs)))
    return {subs[j]: ("dev" if r < n_dev else "eval") for r, j in enumerate(order)}


def check_subject_disjoint(df: pd.DataFrame, split_col: str = "split", source: str = "manifest") -> None:
    leaks = find_subject_leaks(df, split_col)
    if leaks:
        raise SubjectLeakError(f"{source}: {len(leaks)} subject(s) in more than one split:\n{format_problems(leaks)}", leaks)
