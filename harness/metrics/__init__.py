"""``harness.metrics``: the exact, trusted metric core (pure functions on score arrays, no I/O).

Conventions
-----------
* Scores: higher = more likely the same person (verification) / more likely bona fide (PAD).
* Decision: accept iff ``score >= threshold`` (a tie at the threshold is accepted).
* Negatives = impostor trials (verification) or attack presentations (PAD);
  positives = genuine trials or bona fide presentations.
* ``FMR(t) = #{negatives >= t} / N_neg``; ``FNMR(t) = #{positives < t} / N_pos``.
  PAD: ``APCER_s(t) = #{attacks of species s >= t} / N_s``; ``BPCER(t) = #{bona fide < t} / N_bf``.
* Every rate the harness reports is ``k/n`` with a people-aware interval (:func:`clustered_rate`, module
  :mod:`~harness.metrics.clustered`: people, not trials, are the independent units) beside the trial-level
  Clopper–Pearson interval of :class:`~harness.metrics.intervals.Rate` (which assumes independent trials).
* Thresholds chosen to meet a target (:func:`threshold_for_fmr`, :func:`bpcer_at_apcer`) are the LOOSEST that
  meet it on the data; a target below ``1/N`` is flagged as not reachable / not measurable.
* Bad input (empty class, NaN, ±inf scores) raises ``ValueError`` naming the array and the problem.
* Inputs may be lists, numpy arrays or torch tensors; numpy is the default engine and
  :func:`~harness.metrics.torch_backend.roc_torch` is the optional torch/CUDA path (``roc`` dispatches to it for
  tensors).

Modules: :mod:`.intervals`, :mod:`.clustered`, :mod:`.verification`, :mod:`.pad` (ISO/IEC 30107-3:2023),
:mod:`.system` (matcher + PAD in series), :mod:`.bootstrap`, :mod:`.calibration`, :mod:`.torch_backend`.
"""

from .bootstrap import (
    BootstrapInterval,
    pair_bootstrap_rate,
    subject_bootstrap,
)
from .clustered import ClusteredRate, clustered_rate, clustered_upper_bound
from .calibration import LLRMap, cllr, ece, fit_llr, min_cllr, pav, pav_llr
from .intervals import Rate, clopper_pearson, format_percent, rate, rule_of_three
from .pad import (
    BPCER_PRESETS,
    acer,
    apcer_at_bpcer,
    apcer_max,
    apcer_per_species,
    bpcer,
    bpcer_at_apcer,
    bpcer_preset,
    hter,
    non_response_rate,
    worst_species,
)
from .system import iapar, joint_surface, riapar
from .verification import (
    DEFAULT_FMR_TARGETS,
    ThresholdChoice,
    det,
    eer,
    eer_details,
    eer_rocch,
    error_counts,
    error_rates,
    far_frr_with_fta,
    fnmr_at_fmr_table,
    rates_at,
    roc,
    roc_counts,
    rocch,
    threshold_for_fmr,
    threshold_for_fnmr,
)

__all__ = [
    "BPCER_PRESETS", "DEFAULT_FMR_TARGETS", "BootstrapInterval", "LLRMap", "Rate", "ThresholdChoice",
    "acer", "apcer_at_bpcer", "apcer_max", "apcer_per_species", "bpcer", "bpcer_at_apcer", "bpcer_preset",
    "cllr", "clopper_pearson", "det", "ece", "eer", "eer_details", "eer_rocch", "error_counts", "error_rates",
    "far_frr_with_fta", "fit_llr", "fnmr_at_fmr_table", "format_percent", "hter", "iapar", "joint_surface",
    "min_cllr", "non_response_rate", "pair_bootstrap_rate", "pav", "pav_llr", "rate", "rates_at", "riapar",
    "roc", "roc_counts", "rocch", "rule_of_three", "subject_bootstrap", "threshold_for_fmr", "threshold_for_fnmr",
    "ClusteredRate", "clustered_rate", "clustered_upper_bound", "worst_species",
]
