"""Calibration: Cllr, minimum Cllr (via PAV), expected calibration error, and score -> LLR maps.

Log-likelihood ratios (LLRs) are natural logs: ``LLR(s) = ln p(s | same/bona fide) - ln p(s | different/attack)``.
Positive LLR supports "same person" (or "bona fide"). An LLR is prior-free; a posterior needs a prior:
``logit P(same | s) = LLR(s) + logit(prior)``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ._checks import as_scores, check_probability, to_numpy

__all__ = ["cllr", "min_cllr", "pav", "pav_llr", "ece", "fit_llr", "LLRMap"]

_LN2 = math.log(2.0)


def cllr(llr_neg: Any, llr_pos: Any) -> float:
    """Log-likelihood-ratio cost (Brümmer): ``½[mean log2(1+e^{llr_neg}) + mean log2(1+e^{-llr_pos})]`` (bits).

    0 is perfect, 1 is a system that always outputs LLR = 0; infinite LLRs are allowed (a wrong infinite one
    costs infinity).
    """
    n = as_scores(llr_neg, "llr_neg", allow_inf=True)
    p = as_scores(llr_pos, "llr_pos", allow_inf=True)
    return float(0.5 * (np.mean(np.logaddexp(0.0, n)) + np.mean(np.logaddexp(0.0, -p))) / _LN2)


def pav(y: Any, w: Any = None) -> np.ndarray:
    """Weighted isotonic (non-decreasing) least-squares fit by pool-adjacent-violators, in input order."""
    yv = np.asarray(to_numpy(y), dtype=np.float64).ravel()
    wv = np.ones_like(yv) if w is None else np.asarray(to_numpy(w), dtype=np.float64).ravel()
    if wv.shape != yv.shape:
        raise ValueError("y and w must have the same length")
    if (wv <= 0).any():
        raise ValueError("weights must be positive")
    m = yv.size
    val = np.empty(m)  # block means
    wt = np.empty(m)  # block weights
    end = np.empty(m, dtype=np.int64)  # block end index (exclusive)
    top = -1
    for i in range(m):
        top += 1
        val[top], wt[top], end[top] = yv[i], wv[i], i + 1
        while top > 0 and val[top - 1] >= val[top]:
            ww = wt[top - 1] + wt[top]
            val[top - 1] = (val[top - 1] * wt[top - 1] + val[top] * wt[top]) / ww
            wt[top - 1] = ww
            end[top - 1] = end[top]
            top -= 1
    lengths = np.diff(np.concatenate(([0], end[: top + 1])))
    return np.repeat(val[: top + 1], lengths)


def _pav_posterior(neg: np.ndarray, pos: np.ndarray):
    """Unique scores ``u``, per-unique counts and the PAV posterior P(positive | u) (ties pooled first)."""
    s = np.concatenate((neg, pos)).astype(np.float64)
    lab = np.concatenate((np.zeros(neg.size), np.ones(pos.size)))
    u, inv, cnt = np.unique(s, return_inverse=True, return_counts=True)
    k_pos = np.bincount(inv.ravel(), weights=lab, minlength=u.size)
    p = pav(k_pos / cnt, cnt)
    return u, cnt, k_pos, np.clip(p, 0.0, 1.0)


def _posterior_to_llr(p: np.ndarray, n_neg: int, n_pos: int) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p) - math.log(n_pos / n_neg)


def pav_llr(negatives: Any, positives: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(unique_scores, llr)``: the PAV (optimal monotone) LLR at each distinct score; may be ±inf at the ends."""
    neg = as_scores(negatives, "negatives")
    pos = as_scores(positives, "positives")
    u, _, _, p = _pav_posterior(neg, pos)
    return u, _posterior_to_llr(p, neg.size, pos.size)


def min_cllr(negatives: Any, positives: Any) -> float:
    """Minimum Cllr: Cllr after the optimal monotone recalibration (PAV on the pooled scores, ties pooled).

    The PAV posterior is turned into an LLR with the empirical prior ``N_pos / (N_neg + N_pos)``.
    ``Cllr - min_cllr`` is the calibration loss.
    """
    neg = as_scores(negatives, "negatives")
    pos = as_scores(positives, "positives")
    u, cnt, k_pos, p = _pav_posterior(neg, pos)
    llr = _posterior_to_llr(p, neg.size, pos.size)
    k_neg = cnt - k_pos
    # a block with p == 0 has no positives, with p == 1 no negatives: skip those terms (0 * inf)
    cn = np.where(k_neg > 0, k_neg * np.logaddexp(0.0, np.where(k_neg > 0, llr, 0.0)), 0.0).sum()
    cp = np.where(k_pos > 0, k_pos * np.logaddexp(0.0, -np.where(k_pos > 0, llr, 0.0)), 0.0).sum()
    return float(0.5 * (cn / neg.size + cp / pos.size) / _LN2)


def ece(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Expected calibration error of binary probabilities P(label = 1): ``Σ_b (n_b/N) |mean(label) - mean(p)|``.

    Equal-width bins on [0, 1]: ``[i/n_bins, (i+1)/n_bins)``, the last one closed.
    """
    p = as_scores(probs, "probs")
    y = np.asarray(to_numpy(labels)).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels has {y.size} entries but probs has {p.size}")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probs must lie in [0, 1]")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1 (or bool)")
    if int(n_bins) < 1:
        raise ValueError("n_bins must be >= 1")
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, int(n_bins) - 1)
    n_b = np.bincount(b, minlength=n_bins)
    conf = np.bincount(b, weights=p, minlength=n_bins)
    acc = np.bincount(b, weights=y.astype(np.float64), minlength=n_bins)
    nz = n_b > 0
    return float(np.sum(np.abs(acc[nz] - conf[nz])) / p.size)


class LLRMap:
    """A fitted score -> LLR map. ``m(s)`` / ``m.llr(s)``: natural-log LLR; ``m.posterior(s, prior)``;
    ``m.describe(s)``: a sentence stating the score as evidence."""

    def __init__(self, method: str, fn: Callable[[np.ndarray], np.ndarray], params: dict[str, Any]):
        self.method = method
        self.params = params
        self._fn = fn

    def __repr__(self) -> str:
        return f"LLRMap(method={self.method!r}, params={self.params!r})"

    def llr(self, scores: Any) -> np.ndarray | float:
        s = np.asarray(to_numpy(scores), dtype=np.float64)
        out = self._fn(s.ravel()).reshape(s.shape)
        return float(out) if out.ndim == 0 else out

    __call__ = llr

    def likelihood_ratio(self, scores: Any) -> np.ndarray | float:
        return np.exp(self.llr(scores))

    def posterior(self, scores: Any, prior: float = 0.5) -> np.ndarray | float:
        pr = check_probability(prior, "prior", open_low=True, open_high=True)
        z = np.asarray(self.llr(scores)) + math.log(pr / (1 - pr))
        out = 1.0 / (1.0 + np.exp(-z))
        return float(out) if out.ndim == 0 else out

    def describe(self, score: float, labels: tuple[str, str] = ("the same person", "different people")) -> str:
        v = float(self.llr(float(score)))
        same, diff = labels
        head = f"score {score:g}: LLR = {v:+.2f} (natural log; log10 LR = {v / math.log(10):+.2f}, {self.method} fit)"
        if math.isinf(v):
            side = same if v > 0 else diff
            return f"{head}: no counter-examples at this score in the calibration data; evidence for {side} is unbounded"
        lr = math.exp(v)
        if lr >= 1:
            return f"{head}: this score is {lr:.3g} times more likely if {same} than if {diff}"
        return f"{head}: this score is {1 / lr:.3g} times more likely if {diff} than if {same}"


def _fit_logistic(neg: np.ndarray, pos: np.ndarray, ridge: float) -> tuple[float, float]:
    """Prior-balanced logistic regression ``llr = a*s + b`` by Newton's method (each class weighs ½)."""
    s = np.concatenate((neg, pos)).astype(np.float64)
    y = np.concatenate((np.zeros(neg.size), np.ones(pos.size)))
    w = np.concatenate((np.full(neg.size, 0.5 / neg.size), np.full(pos.size, 0.5 / pos.size)))
    mu, sd = float(s.mean()), float(s.std()) or 1.0
    z = (s - mu) / sd
    X = np.stack((z, np.ones_like(z)), axis=1)
    beta = np.zeros(2)

    def loss(bt: np.ndarray) -> float:
        f = X @ bt
        return float(np.sum(w * np.where(y > 0, np.logaddexp(0, -f), np.logaddexp(0, f)))) + 0.5 * ridge * bt[0] ** 2

    cur = loss(beta)
    for _ in range(100):
        f = X @ beta
        q = 1.0 / (1.0 + np.exp(-f))
        grad = X.T @ (w * (q - y)) + np.array([ridge * beta[0], 0.0])
        H = (X * (w * q * (1 - q))[:, None]).T @ X + np.diag([ridge, 1e-12])
        step = np.linalg.solve(H, grad)
        t, improved = 1.0, False
        while t > 1e-8:
            nb = beta - t * step
            nl = loss(nb)
            if nl <= cur:
                improved = True
                break
            t /= 2
        if not improved:
            break
        done = cur - nl < 1e-12
        beta, cur = nb, nl
        if done:
            break
    a = beta[0] / sd
    return float(a), float(beta[1] - a * mu)


def fit_llr(negatives: Any, positives: Any, method: str = "logistic", *, ridge: float = 1e-6,
            clip: float | None = None) -> LLRMap:
    """Fit a monotone score -> LLR map on calibration scores (negatives = different, positives = same).

    * ``"logistic"``: ``LLR(s) = a*s + b`` from logistic regression with the two classes weighted equally, so the
      fitted log-odds are a prior-free LLR. A tiny ``ridge`` on the slope keeps it finite for separable data.
    * ``"pav"``: the PAV (isotonic) posterior at each distinct calibration score, turned into an LLR with the
      empirical prior; a right-continuous step function of the score (constant beyond the data). Can be ±inf
      at the extremes; ``clip`` caps ``|LLR|``.
    Fit on data disjoint from the data you report on.
    """
    neg = as_scores(negatives, "negatives")
    pos = as_scores(positives, "positives")
    if method == "logistic":
        a, b = _fit_logistic(neg, pos, float(ridge))

        def fn(s: np.ndarray) -> np.ndarray:
            out = a * s + b
            return np.clip(out, -clip, clip) if clip is not None else out

        return LLRMap("logistic", fn, {"slope": a, "intercept": b, "ridge": ridge})
    if method == "pav":
        u, llr = pav_llr(neg, pos)
        if clip is not None:
            llr = np.clip(llr, -clip, clip)

        def fn(s: np.ndarray) -> np.ndarray:
            i = np.clip(np.searchsorted(u, s, side="right") - 1, 0, u.size - 1)
            return llr[i]

        return LLRMap("pav", fn, {"n_steps": int(np.unique(llr).size), "clip": clip})
    raise ValueError(f"method must be 'logistic' or 'pav', got {method!r}")
