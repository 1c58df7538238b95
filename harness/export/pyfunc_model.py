"""MLflow "model from code": a pyfunc that wraps the runtime decision of an exported operating point.

Logged by :func:`harness.export.mlflow_model.register_operating_point`; not imported by the harness itself.
Input: a DataFrame with ``match_score`` and ``pad_score`` columns (doubles). Output: ``decision`` (accept /
review / reject), ``reason`` and ``evidence`` per row (strings); the logged model's signature says the same
(:func:`harness.export.mlflow_model.model_signature`). The operating point file travels as the model artifact
``operating_point`` and is verified on load (checksum, schema, signature - or, when the serving process holds no
signing key, the content_sha256 approved by registering it - and the weights sha256 recorded in the model config
at logging time).
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.models import set_model

try:  # the harness installed
    from harness.runtime import load
except ImportError:  # runtime.py shipped in the model's code_paths
    from runtime import load  # type: ignore[no-redef]


class OperatingPointModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import os

        cfg = context.model_config or {}
        has_key = bool(os.environ.get("HARNESS_SIGNING_KEY") or os.environ.get("HARNESS_SIGNING_KEY_FILE"))
        self.op = load(context.artifacts["operating_point"], embedder_sha256=cfg.get("embedder_sha256"),
                       pad_sha256=cfg.get("pad_sha256"), vendor_identity=cfg.get("vendor_identity"),
                       # with the team's key: its signature; without: the content hash approved by registering it
                       trusted_content_sha256=None if has_key else cfg.get("content_sha256"),
                       allow_not_deployable=bool(cfg.get("allow_not_deployable", False)))

    def predict(self, context, model_input, params=None):
        df = pd.DataFrame(model_input)
        missing = {"match_score", "pad_score"} - set(df.columns)
        if missing:
            raise ValueError(f"input lacks column(s) {sorted(missing)}; expected match_score and pad_score")
        ds = [self.op.decide(m, p) for m, p in zip(df["match_score"], df["pad_score"])]
        # the columns and types of the model signature (harness.export.mlflow_model.OUTPUT_COLUMNS): three strings
        return pd.DataFrame({"decision": [str(d.outcome) for d in ds], "reason": [str(d.reason) for d in ds],
                             "evidence": [str(d.evidence) for d in ds]})


set_model(OperatingPointModel())
