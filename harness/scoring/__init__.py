"""Scoring: every manifest row -> status, detection, embedding and PAD score, cached in one score store.

Read in this order: :mod:`~harness.scoring.store` (the score store: keys, preprocessing versions, the only SQL),
:mod:`~harness.scoring.table` (the score table and the per-chunk bookkeeping both engines share),
:mod:`~harness.scoring.reference` (the reference engine, plain code), then the batched engine
:mod:`~harness.scoring.batched` and its parts: :mod:`~harness.scoring.loader` (worker decode),
:mod:`~harness.scoring.detection`, :mod:`~harness.scoring.stages` (embed + PAD), :mod:`~harness.scoring.backoff`
(OOM halving), :mod:`~harness.scoring.timing`. ``cache`` and ``engine`` are compatibility names.
"""
