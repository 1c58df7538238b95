"""Face verification + presentation-attack detection (PAD) benchmarking harness.

Conventions used everywhere in this package:

* Scores: higher = more likely the same person / more likely bona fide. Accept iff score >= threshold.
  Distance-based models expose ``score = -distance``.
* Labels: ``bona_fide`` | ``attack``; attack species come from :data:`harness.data.sample.SPECIES`.
* Every reported rate carries its raw counts ``k/n`` and a confidence interval.
"""

__version__ = "0.1.0"
