"""Coverage of nominal 95 % intervals for FNMR and FMR at a fixed threshold when scores are subject-correlated.

Not a test. Simulation model (all Gaussian, total score variance 1 within each class):

* S subjects; subject effect ``u_s ~ N(0, var_u)`` for genuine scores, ``v_s ~ N(0, var_v)`` for impostor scores.
* genuine: ``m`` trials per subject, ``score = mu_g + u_s + e``; subjects (s, s).
* impostor: every pair a < b, ``r`` trials per pair, ``score = v_a + v_b + e``; subjects (a, b).
* threshold t = Phi^-1(0.99) so the true FMR is 1 %; mu_g = t + Phi^-1(0.95) so the true FNMR is 5 %.

For each replication: draw a data set, compute the intervals, record whether they contain the true rate.
Methods: the default subject-level interval of harness.metrics.bootstrap (``method="logit"``: one-way / two-way
(dyadic) cluster-robust delta-method variance, logit-scale t interval), the subject bootstrap percentile interval
(``method="percentile"``, same-subject weight c), the same with the literal "product of counts" weight c^2 for
same-subject trials, the naive pair (trial) bootstrap, and Clopper–Pearson.

    python benchmarks/coverage_study.py [--reps 500] [--boot 1000] [--subjects 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.metrics.bootstrap import pair_bootstrap_rate, subject_bootstrap_rate  # noqa: E402
from harness.metrics.intervals import clopper_pearson  # noqa: E402

T = float(norm.ppf(0.99))
MU_G = T + float(norm.ppf(0.95))
TRUE_FMR, TRUE_FNMR = 0.01, 0.05


def simulate(rng, S, m, r, var_u, var_v):
    u = rng.normal(0, np.sqrt(var_u), S)
    gen_subj = np.repeat(np.arange(S), m)
    gen = MU_G + u[gen_subj] + rng.normal(0, np.sqrt(1 - var_u), gen_subj.size)
    ia, ib = np.triu_indices(S, 1)
    ia, ib = np.repeat(ia, r), np.repeat(ib, r)
    v = rng.normal(0, np.sqrt(var_v), S)
    imp = v[ia] + v[ib] + rng.normal(0, np.sqrt(1 - 2 * var_v), ia.size)
    return gen, gen_subj, imp, ia, ib


def study(name, S, m, r, var_u, var_v, reps, n_boot, rng):
    methods = ["subject bootstrap (percentile)", "subject bootstrap (c^2 same-subj.)", "pair bootstrap",
               "Clopper-Pearson", "subject-level CR logit (default)"]
    hits = {(k, mth): 0 for k in ("FNMR", "FMR") for mth in methods}
    width = {key: 0.0 for key in hits}
    for _ in range(reps):
        gen, gs, imp, ia, ib = simulate(rng, S, m, r, var_u, var_v)
        for key, err, a, b, true in (("FNMR", gen < T, gs, gs, TRUE_FNMR), ("FMR", imp >= T, ia, ib, TRUE_FMR)):
            ivs = {
                methods[4]: subject_bootstrap_rate(err, a, b),  # default method="logit"
                methods[0]: subject_bootstrap_rate(err, a, b, n_boot=n_boot, rng=rng, method="percentile"),
                methods[2]: pair_bootstrap_rate(err, n_boot=n_boot, rng=rng),
            }
            ivs[methods[3]] = clopper_pearson(int(err.sum()), err.size)
            if key == "FNMR":
                ivs[methods[1]] = subject_bootstrap_rate(err, a, b, n_boot=n_boot, rng=rng, same_subject="product",
                                                         method="percentile")
            for mth, iv in ivs.items():
                lo, hi = (iv.lo, iv.hi) if hasattr(iv, "lo") else iv
                hits[(key, mth)] += lo <= true <= hi
                width[(key, mth)] += hi - lo
    rows = []
    order = [methods[i] for i in (4, 0, 1, 2, 3)]
    for (key, mth), h in sorted(hits.items(), key=lambda kv: (kv[0][0] != "FNMR", order.index(kv[0][1]))):
        if key == "FMR" and "c^2" in mth:
            continue  # impostor trials are all cross-subject: identical to the first method
        rows.append((name, key, mth, h / reps, width[(key, mth)] / reps))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--subjects", type=int, default=100)
    ap.add_argument("--seed", type=int, default=20240601)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    S = a.subjects
    scenarios = [
        # name, subjects, genuine trials per subject, trials per impostor pair, var_u, var_v
        ("strong subject effects", S, 10, 2, 0.5, 0.15),
        ("no subject effects", S, 10, 2, 0.0, 0.0),
    ]
    t0 = time.perf_counter()
    rows = []
    for sc in scenarios:
        rows += study(*sc, reps=a.reps, n_boot=a.boot, rng=rng)
    dt = time.perf_counter() - t0
    mc = np.sqrt(0.95 * 0.05 / a.reps)
    n_imp = S * (S - 1) // 2 * 2
    print(f"{a.reps} replications x {a.boot} bootstrap resamples, {S} subjects, {S * 10} genuine trials, "
          f"{n_imp} impostor trials; true FNMR {TRUE_FNMR:.0%}, true FMR {TRUE_FMR:.0%}; "
          f"Monte Carlo s.e. of a 95% coverage ~ {mc:.1%}; {dt:.0f} s")
    print()
    print(f"| {'scenario':<22} | {'rate':<4} | {'interval':<34} | {'coverage':>8} | {'mean width':>10} |")
    print(f"|{'-' * 24}|{'-' * 6}|{'-' * 36}|{'-' * 10}|{'-' * 12}|")
    for name, key, mth, cov, w in rows:
        print(f"| {name:<22} | {key:<4} | {mth:<34} | {cov:>8.1%} | {w:>10.4f} |")


if __name__ == "__main__":
    main()
