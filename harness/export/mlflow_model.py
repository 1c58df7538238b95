"""MLflow side of the export: tags on the run, and (optionally) a registered pyfunc model with an alias.

The run already holds ``operating_point.json`` as an artifact (every file of the output dir is logged).
:func:`log_export` adds tags that make runs searchable by operating point; :func:`register_operating_point`
logs the decision as a pyfunc model (:mod:`harness.export.pyfunc_model`) and registers it under a name with an
alias such as ``candidate`` (promote by moving the alias, e.g. to ``champion``, after review).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.runtime import verify_document

__all__ = ["export_tags", "log_export", "register_operating_point"]

HERE = Path(__file__).resolve().parent


def export_tags(doc: dict) -> dict[str, str]:
    th = doc["thresholds"]
    tags = {
        "op.content_sha256": doc["content_sha256"],
        "op.schema_version": doc["schema_version"],
        "op.policy": th["policy"],
        "op.t_match": repr(th["t_match"]),
        "op.t_pad": repr(th["t_pad"]),
        "op.review_band": str(th["review_band"]).lower(),
        "op.selected_on": th["selected_on"],
        "op.selected_on_eval_data": str(th["selected_on_eval_data"]).lower(),
        "op.supported": str(doc["policy"]["supported"]).lower(),
    }
    for s in doc.get("standards", []):
        tags[f"standard.{s['name']}"] = s["verdict"]
    return tags


def log_export(run_id: str, doc: dict, path: Path, *, tracking_uri: str | None = None,
               register_as: str | None = None, alias: str = "candidate",
               allow_not_deployable: bool = False) -> dict[str, Any]:
    """Tag the run with the export's identity and verdicts; register the pyfunc when ``register_as`` is set (a
    non-deployable export is not registered unless ``allow_not_deployable``; the result says why)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    for k, v in export_tags(doc).items():
        client.set_tag(run_id, k, v)
    out: dict[str, Any] = {"tags": True}
    if register_as and not doc.get("deployable") and not allow_not_deployable:
        out["registered"] = None
        out["not_registered_because"] = "not deployable: " + "; ".join(doc.get("not_deployable_because", []))
    elif register_as:
        out["registered"] = register_operating_point(path, model_name=register_as, alias=alias, run_id=run_id,
                                                     tracking_uri=tracking_uri,
                                                     allow_not_deployable=allow_not_deployable)
    return out


def register_operating_point(path: str | Path, *, model_name: str, alias: str | None = "candidate",
                             run_id: str | None = None, tracking_uri: str | None = None,
                             experiment: str = "face-pad-harness", allow_not_deployable: bool = False) -> dict[str, Any]:
    """Log ``path`` as a pyfunc model (in run ``run_id``, or a new run) and register it as ``model_name``.

    Returns ``{"name", "version", "alias", "model_uri", "run_id"}``. The file is verified first (checksum,
    schema); a non-deployable file is refused unless ``allow_not_deployable``. The model config records the weights
    sha256 the pyfunc will demand on load and the content_sha256 it trusts when the serving process holds no
    signing key (registering is the approval of that hash).
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    path = Path(path)
    doc = verify_document(path.read_bytes())
    if not doc.get("deployable") and not allow_not_deployable:
        raise ValueError(f"{path} is not deployable (" + "; ".join(doc.get("not_deployable_because", []))
                         + "); pass allow_not_deployable=True to register it for analysis")
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    cfg = {"embedder_sha256": doc["models"]["embedder"]["weights_sha256"],
           "pad_sha256": doc["models"]["pad"]["weights_sha256"], "content_sha256": doc["content_sha256"],
           "allow_not_deployable": bool(allow_not_deployable)}
    kwargs = dict(name="operating_point", python_model=str(HERE / "pyfunc_model.py"),
                  artifacts={"operating_point": str(path)}, code_paths=[str(HERE.parent / "runtime.py"), str(HERE.parent / "opdoc.py")],
                  model_config=cfg, pip_requirements=["mlflow", "pandas"],
                  input_example=None)
    if run_id is None:
        mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name=f"operating-point-{doc['content_sha256'][:12]}") as run:
            info = mlflow.pyfunc.log_model(**kwargs)
            run_id = run.info.run_id
    else:
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(**kwargs)
    mv = mlflow.register_model(info.model_uri, model_name, tags={"op.content_sha256": doc["content_sha256"]})
    client = MlflowClient()
    client.set_model_version_tag(model_name, mv.version, "op.policy", doc["thresholds"]["policy"])
    client.set_model_version_tag(model_name, mv.version, "op.thresholds", json.dumps(doc["thresholds"]["bands"]))
    if alias:
        client.set_registered_model_alias(model_name, alias, mv.version)
    return {"name": model_name, "version": str(mv.version), "alias": alias, "model_uri": info.model_uri,
            "run_id": run_id}
