"""MLflow conventions: absolute tracking URI, flattened params, metric names prefixed verif/ pad/ system/."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dict/list -> ``{"a.b.0": v}``."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(d, (list, tuple)) and d and all(isinstance(x, (dict, list)) for x in d):
        for i, v in enumerate(d):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = d
    return out


def params_from_config(cfg: DictConfig) -> dict[str, str]:
    """Flattened resolved config; values over MLflow's 6000-char limit are replaced by their sha256."""
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    out = {}
    for k, v in flat.items():
        s = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
        out[k] = s if len(s) <= 500 else "sha256:" + hashlib.sha256(s.encode()).hexdigest()
    return out


def resolve_uri(uri: str | None) -> str:
    """``$MLFLOW_TRACKING_URI`` wins; a relative sqlite path is made absolute (MLflow needs one)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or uri
    if not uri:
        raise ValueError("tracking.uri is empty and MLFLOW_TRACKING_URI is unset")
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = Path(uri[len("sqlite:///"):]).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{path}"
    elif uri.startswith("sqlite:////"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def metrics_from_summary(summary_metrics: dict) -> dict[str, float]:
    """Numeric leaves of ``{partition: {group: ...}}`` as ``group/partition/...`` names (``verif/eval/eer/value``)."""
    out = {}
    for part, groups in summary_metrics.items():
        for group, tree in groups.items():
            for k, v in flatten(tree).items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) == float("inf"):
                    continue
                out[f"{group}/{part}/{k.replace('.', '/')}"] = float(v)
    return out


def ensure_experiment(name: str, uri: str, artifact_root: Path) -> str:
    """Get or create the experiment; with a local sqlite store its artifacts go under ``artifact_root`` (not ./mlruns).

    Safe when several jobs start at once: a lost creation race falls back to reading the winner's experiment.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = artifact_root.resolve().as_uri() if uri.startswith("sqlite:") else None
        try:
            client.create_experiment(name, artifact_location=location)
        except MlflowException:
            pass  # created concurrently by another job
        exp = client.get_experiment_by_name(name)
    mlflow.set_experiment(experiment_id=exp.experiment_id)
    return exp.experiment_id


def log_run(cfg: DictConfig, run_name: str, tags: dict, summary: dict, out_dir: Path) -> str:
    """Create one MLflow run with params, metrics, tags and every file in ``out_dir`` as artifacts; return run id."""
    import mlflow

    uri = resolve_uri(cfg.tracking.uri)
    mlflow.set_tracking_uri(uri)
    ensure_experiment(cfg.tracking.experiment, uri, Path(cfg.results_dir) / "mlartifacts")
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags(tags)
        params = params_from_config(cfg)
        items = list(params.items())
        for s in range(0, len(items), 90):
            mlflow.log_params(dict(items[s:s + 90]))
        metrics = metrics_from_summary(summary["metrics"])
        metrics.update({f"counts/{k}": float(v) for k, v in summary["accounting"].items() if isinstance(v, int)})
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(out_dir))
        return run.info.run_id
