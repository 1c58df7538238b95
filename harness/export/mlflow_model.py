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

__all__ = ["evaluation_run", "export_tags", "log_export", "model_config", "model_signature", "register_operating_point"]

HERE = Path(__file__).resolve().parent
#: the standard-library runtime shipped in the model's code_paths (runtime.py imports the other three)
VENDORED_RUNTIME = ("runtime.py", "opdoc.py", "aggregation.py", "runtime_presentation.py")


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


#: the pyfunc's input and output columns (:class:`harness.export.pyfunc_model.OperatingPointModel.predict`)
INPUT_COLUMNS = (("match_score", "double"), ("pad_score", "double"))
OUTPUT_COLUMNS = (("decision", "string"), ("reason", "string"), ("evidence", "string"))
#: tag of a run created by :func:`register_operating_point` because no evaluation run logged the export
NO_EVALUATION_RUN_TAG = "op.no_evaluation_run"


def model_signature():
    """The pyfunc's :class:`mlflow.models.ModelSignature`: :data:`INPUT_COLUMNS` in, :data:`OUTPUT_COLUMNS` out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec(t, n) for n, t in INPUT_COLUMNS]),
                          outputs=Schema([ColSpec(t, n) for n, t in OUTPUT_COLUMNS]))


def _input_example(doc: dict):
    """Two rows: one at the thresholds (accepted by a strict policy) and one far below them (rejected)."""
    import pandas as pd

    th = doc["thresholds"]
    return pd.DataFrame({"match_score": [float(th["t_match"]), float(th["t_match"]) - 1.0],
                         "pad_score": [float(th["t_pad"]), float(th["t_pad"]) - 1.0]})


def evaluation_run(client, content_sha256: str, experiment: str | None = None):
    """The run that evaluated this export: the newest run tagged ``op.content_sha256`` = ``content_sha256``
    (:func:`log_export` sets it on the experiment's run), in ``experiment`` first, then in any experiment of the
    store; None when there is none. Runs :func:`register_operating_point` created itself are not candidates."""
    from mlflow.entities import ViewType

    flt = f"tags.`op.content_sha256` = '{content_sha256}'"
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=50000)]
    first = client.get_experiment_by_name(experiment) if experiment else None
    groups = [[first.experiment_id], [i for i in ids if i != first.experiment_id]] if first is not None else [ids]
    for group in groups:
        if not group:
            continue
        runs = [r for r in client.search_runs(group, filter_string=flt, order_by=["attributes.start_time DESC"],
                                              max_results=100)
                if NO_EVALUATION_RUN_TAG not in r.data.tags]
        if runs:
            return runs[0]
    return None


def register_operating_point(path: str | Path, *, model_name: str, alias: str | None = "candidate",
                             run_id: str | None = None, tracking_uri: str | None = None,
                             experiment: str = "face-pad-harness", allow_not_deployable: bool = False) -> dict[str, Any]:
    """Log ``path`` as a pyfunc model and register it as ``model_name``.

    The model is logged in run ``run_id``; without one, in the evaluation run that logged this export (the run
    tagged ``op.content_sha256`` = the file's content_sha256, :func:`evaluation_run`); only when the store has no
    such run in a new run of ``experiment``, tagged :data:`NO_EVALUATION_RUN_TAG` with the reason. The run is
    written through the client, never started or ended here: an evaluation run still RUNNING (the experiment
    registering its own export) stays RUNNING, and a finished one stays FINISHED.

    The pyfunc has a signature (:func:`model_signature`: ``match_score``, ``pad_score`` doubles in; ``decision``,
    ``reason``, ``evidence`` strings out) and a two-row input example.

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
    client = MlflowClient()
    sha = doc["content_sha256"]
    created = False
    if run_id is None:
        found = evaluation_run(client, sha, experiment)
        if found is not None:
            run_id = found.info.run_id
        else:
            exp = client.get_experiment_by_name(experiment)
            exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
            run = client.create_run(exp_id, run_name=f"operating-point-{sha[:12]}", tags={
                NO_EVALUATION_RUN_TAG: f"no run in the tracking store is tagged op.content_sha256={sha} (the "
                                       "evaluation run that logged this export): the model is logged in this run "
                                       "created to hold it",
                "op.registered_content_sha256": sha})
            run_id, created = run.info.run_id, True
    try:
        info = _log_model(client, run_id, path, doc, allow_not_deployable)
    except BaseException:
        if created:
            client.set_terminated(run_id, "FAILED")
        raise
    if created:
        client.set_terminated(run_id, "FINISHED")
    mv = mlflow.register_model(info.model_uri, model_name, tags={"op.content_sha256": sha})
    client.set_model_version_tag(model_name, mv.version, "op.policy", doc["thresholds"]["policy"])
    client.set_model_version_tag(model_name, mv.version, "op.thresholds", json.dumps(doc["thresholds"]["bands"]))
    if alias:
        client.set_registered_model_alias(model_name, alias, mv.version)
    return {"name": model_name, "version": str(mv.version), "alias": alias, "model_uri": info.model_uri,
            "run_id": run_id}


def model_config(doc: dict, allow_not_deployable: bool = False) -> dict:
    """The pyfunc's ``model_config``: the weights sha256 (or, schema 3.3, the vendor identity) the runtime checks,
    the approved content hash and whether a non-deployable file may load."""
    emb, pad = doc["models"]["embedder"], doc["models"]["pad"]
    vendor = emb.get("vendor") or pad.get("vendor") or {}  # imported scores: checked by identity, not weights
    return {"embedder_sha256": emb.get("weights_sha256"), "pad_sha256": pad.get("weights_sha256"),
            "vendor_identity": vendor.get("identity"), "content_sha256": doc["content_sha256"],
            "allow_not_deployable": bool(allow_not_deployable)}


def _log_model(client, run_id: str, path: Path, doc: dict, allow_not_deployable: bool):
    """Log the pyfunc of ``path`` in run ``run_id`` without starting or ending the run."""
    import mlflow
    from mlflow.models import Model

    run_info = client.get_run(run_id).info
    cfg = model_config(doc, allow_not_deployable)
    # not mlflow.start_run(run_id=...): leaving that block ends the run (FINISHED), which would close an evaluation
    # run the tracker still holds RUNNING. Model.log with run_id writes through the client; the logged model
    # belongs to the run's experiment.
    mlflow.set_experiment(experiment_id=run_info.experiment_id)
    info = Model.log(artifact_path=None, name="operating_point", flavor=mlflow.pyfunc, run_id=run_id,
                     python_model=str(HERE / "pyfunc_model.py"), artifacts={"operating_point": str(path)},
                     code_paths=[str(HERE.parent / f) for f in VENDORED_RUNTIME],
                     model_config=cfg, pip_requirements=["mlflow", "pandas"], signature=model_signature(),
                     input_example=_input_example(doc), flavor_name="pyfunc.ModelFromCode")
    return info
