"""MLflow conventions: absolute tracking URI, flattened params, a short list of named metrics (``verif/`` ``pad/``
``system_level/`` ``counts/`` and the committee's headline ``decision/``), the run description, the dataset input.

Metrics (:func:`run_metrics`) are a committee's reading list, not a dump of ``summary.json`` (which is the run's
artifact and holds everything): each logged rate carries ``k``, ``n``, ``value``, ``lo``, ``hi``, ``n_subjects``
(constants beside it - confidence level, interval method, minimum people - are the ``evidence.*`` params of
:func:`run_params`). The summary group ``system`` is logged as ``system_level/``: MLflow reserves ``system/`` for its
system-metrics tab, and no metric key starting with ``system/`` is ever logged (:func:`guard_metric_names`).

Credentials in the tracking URI (``http://user:token@host``, ``?token=...``) are used to talk to the server and
nowhere else: params, tags and messages carry :func:`harness.redact.redact_uri` of it. An http(s) server is
checked once before scoring (:func:`check_reachable`), so an unreachable one costs seconds, not the whole run.

A run's MLflow run lives as long as the experiment (:func:`harness.run_lifecycle.tracked_run`): created RUNNING when it starts, with a
``heartbeat`` tag while it works, FINISHED / FAILED (``error`` tag) / KILLED at the end; runs left RUNNING by killed
processes are marked KILLED by the next run of the experiment (:func:`harness.run_lifecycle.mark_stale_runs`).

The run lifecycle lives in :mod:`harness.run_lifecycle`, the reachability check and the translation of tracking
errors in :mod:`harness.tracking_errors`, the store and the experiment in :mod:`harness.tracking_store` (the last two
re-exported here; the lifecycle imports this module, so it is imported from :mod:`harness.run_lifecycle` itself).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.redact import redact_uri
from harness.tracking_errors import (CHECK_TIMEOUT_S, TrackingError, TrackingUnreachable,  # noqa: F401
                                     check_reachable, is_tracking_error, no_http_retries, quiet_url_printing,
                                     tracking_errors)
from harness.tracking_store import (EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, ensure_experiment, init_store,  # noqa: F401
                                    sqlite_path)

log = logging.getLogger("harness")


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
        s = redact_uri(json.dumps(v) if isinstance(v, (list, dict)) else str(v))
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


def check_tracking(cfg: DictConfig) -> str | None:
    """The pre-scoring check of a run's tracking config: resolve the URI and :func:`check_reachable` it.
    Returns the resolved URI (None when tracking is disabled)."""
    if not OmegaConf.select(cfg, "tracking.enabled", default=False):
        return None
    uri = resolve_uri(cfg.tracking.uri)
    check_reachable(uri)
    return uri



#: the fields of a rate that are logged; its constants (``confidence``, ``side``, ``method``, ``design_effect``, the
#: trial-level ``cp_lo`` / ``cp_hi``) stay in summary.json, the run-wide ones are :func:`run_params`
RATE_FIELDS = ("k", "n", "value", "lo", "hi", "n_subjects")
#: the rates the decision rests on (group of ``summary["metrics"][partition]`` -> paths): all :data:`RATE_FIELDS` on
#: the report partition, ``value`` on the others
CORE_RATES = {"verif": ("fta", "at_operating_point/fmr", "at_operating_point/fnmr"),
              "pad": ("at_operating_point/apcer_max", "at_operating_point/bpcer"),
              "system": ("iapar", "zero_effort_fmr", "genuine_rejection", "attack_match_only_acceptance")}
#: the fields of every other rate (per species, non-response) on the report partition (none on the others)
DETAIL_FIELDS = ("k", "n", "value")
#: summary group -> metric prefix (MLflow's UI reserves ``system/`` for system metrics)
GROUP_NAMES = {"system": "system_level"}
#: trade-off curve points (relative to their group): ``threshold`` and ``value`` (EER) and the rate the point is
#: about (``fnmr`` of FNMR@FMR, ``bpcer`` of BPCER@APCER); a point the data cannot measure is not logged (it is
#: in the run's ``unmeasurable/...`` tags); the constraint side (its target, ``min_negatives``) is left out
_CURVE = re.compile(r"^(eer|eer_non_iso|fnmr_at_fmr/[^/]+|bpcer\d+)$")
#: accounting counters of the feature cache: not evidence, left out of ``counts/``
_CACHE_COUNTS = re.compile(r"_(cached|computed)$")


def _num(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and v == v and abs(v) != float("inf")


def _is_rate(d: Any) -> bool:
    return isinstance(d, dict) and {"k", "n", "value"} <= d.keys()


def metrics_from_summary(summary_metrics: dict, *, report_partition: str = "eval") -> dict[str, float]:
    """The named metrics of ``{partition: {group: ...}}`` as ``group/partition/...`` (``verif/eval/eer/value``,
    ``system_level/eval/iapar/hi``): on ``report_partition`` the :data:`CORE_RATES` with all :data:`RATE_FIELDS`
    and every other rate with :data:`DETAIL_FIELDS`; on the other partitions (dev: where the thresholds were chosen)
    the core rates' ``value``; on every partition the thresholds, EER values and the measurable trade-off points.
    Group ``system`` is named ``system_level`` (:data:`GROUP_NAMES`)."""
    out: dict[str, float] = {}
    for part, groups in summary_metrics.items():
        report = part == report_partition
        for group, tree in groups.items():
            if not isinstance(tree, dict):
                continue
            prefix = f"{GROUP_NAMES.get(group, group)}/{part}"
            core = CORE_RATES.get(group, ())

            def emit(path: str, d: dict, fields: tuple[str, ...]) -> None:
                for f in fields:
                    if _num(d.get(f)):
                        out[f"{prefix}/{path}/{f}"] = float(d[f])

            def walk(node: dict, path: str) -> None:
                for k, v in node.items():
                    p = f"{path}/{k}" if path else k
                    if _is_rate(v):
                        emit(p, v, (RATE_FIELDS if p in core else DETAIL_FIELDS) if report else
                             (("value",) if p in core else ()))
                    elif isinstance(v, dict) and _CURVE.match(p):
                        if v.get("measurable") is False:
                            continue
                        emit(p, v, ("threshold", "value"))
                        y = "fnmr" if p.startswith("fnmr_at_fmr/") else "bpcer" if p.startswith("bpcer") else None
                        if y and _is_rate(v.get(y)):
                            emit(f"{p}/{y}", v[y], ("value", "lo", "hi") if report else ("value",))
                    elif isinstance(v, dict):
                        walk(v, p)
                    elif k in ("threshold", "value") and _num(v):
                        out[f"{prefix}/{p}"] = float(v)

            walk(tree, "")
    return out


def _get(d: Any, *path: str) -> Any:
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


#: ``decision/<name>`` -> where in ``summary["metrics"][<report partition>]`` its value is (a rate's ``value``)
DECISION_RATES = {"fmr": ("verif", "at_operating_point", "fmr"), "fnmr": ("verif", "at_operating_point", "fnmr"),
                  "apcer_max": ("pad", "at_operating_point", "apcer_max"),
                  "bpcer": ("pad", "at_operating_point", "bpcer"), "iapar": ("system", "iapar"),
                  "genuine_rejection": ("system", "genuine_rejection")}


def decision_metrics(summary: dict) -> dict[str, float]:
    """The headline a committee reads first, as fractions: ``decision/<partition>_<rate>`` for the
    :data:`DECISION_RATES` at the operating point on the report partition (``decision/eval_fmr``,
    ``decision/eval_iapar`` ...), ``decision/t_match``, ``decision/t_pad`` and ``decision/targets_supported``
    (1 / 0). A rate the run has not got is left out."""
    part = _report_partition(summary)
    m = (summary.get("metrics") or {}).get(part) or {}
    out = {}
    for name, path in DECISION_RATES.items():
        v = _get(m, *path, "value")
        if _num(v):
            out[f"decision/{part}_{name}"] = float(v)
    op = summary.get("operating_point") or {}
    for t in ("t_match", "t_pad"):
        if _num(op.get(t)):
            out[f"decision/{t}"] = float(op[t])
    if isinstance(op.get("supported"), bool):
        out["decision/targets_supported"] = float(op["supported"])
    return out


def _report_partition(summary: dict) -> str:
    return (str(_get(summary, "operating_point", "report", "partition") or "")
            or str(_get(summary, "run", "report_partition") or "") or "eval")


def guard_metric_names(metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` with every key starting with ``system/`` renamed ``system_level/...``: MLflow's UI shows
    ``system/...`` metrics in its system-metrics tab (CPU, memory), where a committee would not look for IAPAR."""
    out = {}
    for k, v in metrics.items():
        if k.startswith("system/"):
            new = "system_level/" + k[len("system/"):]
            log.debug("metric %s logged as %s (system/ is MLflow's system-metrics namespace)", k, new)
            k = new
        out[k] = v
    return out


def run_metrics(summary: dict, out_dir: Path | None = None) -> dict[str, float]:
    """Every metric a run logs: :func:`metrics_from_summary`, ``counts/`` (the accounting, less the cache
    counters), :func:`decision_metrics` and the ``report.json`` metrics, through :func:`guard_metric_names`."""
    metrics = metrics_from_summary(summary["metrics"], report_partition=_report_partition(summary))
    acc = summary.get("accounting") or {}
    metrics.update({f"counts/{k}": float(v) for k, v in acc.items()
                    if isinstance(v, int) and not isinstance(v, bool) and not _CACHE_COUNTS.search(k)})
    metrics.update({f"counts/rejected_by_code/{c}": float(v)  # problem codes (harness.faces.decode.REJECT_CODES)
                    for c, v in (acc.get("rejected_by_code") or {}).items()})
    metrics.update(decision_metrics(summary))
    metrics.update(session_metrics(summary))
    metrics.update(scoring_metrics(summary))
    if out_dir is not None:
        metrics.update(report_metrics(out_dir))
    return guard_metric_names(metrics)


def scoring_metrics(summary: dict) -> dict[str, float]:
    """The scoring engine's throughput (``summary.run.scoring``): ``scoring/rows_per_s`` and ``scoring/<stage>_s``."""
    sc = _get(summary, "run", "scoring") or {}
    out = {f"scoring/{k}": float(sc[k]) for k in ("rows_per_s", "steady_rows_per_s", "total_s", "workers", "blocks")
           if isinstance(sc.get(k), (int, float)) and not isinstance(sc.get(k), bool)}
    out.update({f"scoring/{k}_s": float(v) for k, v in (sc.get("stage_s") or {}).items()
                if isinstance(v, (int, float))})
    return out


def session_metrics(summary: dict) -> dict[str, float]:
    """The session-level headline (:mod:`harness.session_metrics`): ``presentation/<partition>/<rate>/...`` and
    ``flow/...``; the full blocks stay in ``summary.json`` (logged as an artifact)."""
    from harness.session_metrics import flow_metrics, presentation_metrics

    return presentation_metrics(summary) | flow_metrics(summary.get("flow") or {})


def run_params(summary: dict) -> dict[str, str]:
    """The run-wide constants of its evidence as params: ``evidence.confidence``, ``evidence.interval``,
    ``evidence.min_subjects`` (and the interval sides) from ``summary["operating_point"]["evidence"]``; the
    policy's targets are params already (``policy.target_fmr`` ... of the flattened config)."""
    ev = _get(summary, "operating_point", "evidence") or {}
    out = {}
    for k, v in flatten(ev).items():
        if v is not None and not isinstance(v, (dict, list)):
            out[f"evidence.{k}"] = str(v)[:500]
    conf = {_get(r, "confidence") for r in _rates(summary.get("metrics") or {})} - {None}
    if "evidence.confidence" not in out and len(conf) == 1:
        out["evidence.confidence"] = str(conf.pop())
    sc = _get(summary, "run", "scoring") or {}
    for k in ("engine", "workers", "devices"):
        if sc.get(k) not in (None, [], ""):
            out[f"scoring.{k}"] = (",".join(map(str, sc[k])) if isinstance(sc[k], list) else str(sc[k]))[:500]
    if _get(summary, "presentations", "grouping"):
        out["presentation.grouping"] = str(summary["presentations"]["grouping"])[:500]
    return out


def _rates(d: Any):
    if _is_rate(d):
        yield d
    elif isinstance(d, dict):
        for v in d.values():
            yield from _rates(v)


# --- run description ------------------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _rate_text(r: Any) -> str:
    """``k/n = x% [lo, hi], N people`` (people-aware interval), or ``n/a``."""
    if not _is_rate(r) or not _num(r.get("value")):
        return "n/a"
    s = f"{r['k']}/{r['n']} = {_pct(r['value'])}"
    if _num(r.get("lo")) and _num(r.get("hi")):
        s += f" [{_pct(r['lo'])}, {_pct(r['hi'])}]"
    n = r.get("n_subjects")
    if n is not None:
        s += f", {n} {'person' if n == 1 else 'people'}"
    return s


def run_description(summary: dict) -> str:
    """The run's description (MLflow tag ``mlflow.note.content``, markdown): ``summary["decision"]
    ["description_markdown"]`` verbatim when the run has one, else a short plain-language account built from the
    summary: policy and thresholds, the eval rates at the operating point as ``k/n = x% [lo, hi], N people``,
    whether the targets are supported, the operating point's notes."""
    given = _get(summary, "decision", "description_markdown")
    if isinstance(given, str) and given.strip():
        return _clip_note(redact_uri(given))
    op = summary.get("operating_point") or {}
    pol = op.get("policy") or {}
    part = _report_partition(summary)
    m = (summary.get("metrics") or {}).get(part) or {}
    ds, models = summary.get("dataset") or {}, summary.get("models") or {}
    run = summary.get("run") or {}
    targets = ", ".join(f"{k} {v:g}" for k, v in pol.items() if k.startswith("target_") and _num(v))
    lines = [f"**{run.get('name', 'run')}**: dataset **{ds.get('name', '?')}** ({ds.get('samples', '?')} samples, "
             f"{ds.get('subjects', '?')} people), embedder {_get(models, 'embedder', 'name')}, PAD "
             f"{_get(models, 'pad', 'name')}.", "",
             f"**Policy** `{op.get('name') or pol.get('name')}`" + (f" ({targets})" if targets else "")
             + f"; thresholds chosen on **{op.get('selected_on', '?')}**: t_match = {op.get('t_match')}, "
             f"t_pad = {op.get('t_pad')}.", "",
             f"**Targets supported: {'yes' if op.get('supported') else 'no'}**", "",
             f"| {part} at the operating point | k/n = rate [interval], people |", "|---|---|"]
    names = {"fmr": "FMR (impostor accepted by the matcher)", "fnmr": "FNMR (genuine rejected by the matcher)",
             "apcer_max": "APCER_max (worst attack species passed PAD)", "bpcer": "BPCER (bona fide rejected by PAD)",
             "iapar": "IAPAR (attacks accepted by the whole system)",
             "genuine_rejection": "genuine rejection (whole system)"}
    for key, path in DECISION_RATES.items():
        lines.append(f"| {names[key]} | {_rate_text(_get(m, *path))} |")
    ev = op.get("evidence") or {}
    if ev:
        conf = f"{100 * ev['confidence']:g}%" if _num(ev.get("confidence")) else ""
        lines += ["", f"Intervals: {ev.get('interval', '?')}, {ev.get('reported_intervals', 'two-sided')} "
                      f"{conf}; 'N people' = distinct people "
                      f"behind the rate (people, not frames, are the independent units); at least "
                      f"{ev.get('min_subjects', '?')} people are needed to support a target."]
    notes = [str(n) for n in op.get("notes") or []]
    if notes:
        lines += ["", "**Notes on the operating point**", *[f"- {n}" for n in notes]]
    std = [s for s in (_get(op, "report", "standards") or []) if isinstance(s, dict) and s.get("name")]
    if std:
        lines += ["", "**Standards (indicative, not a certification):** "
                  + "; ".join(f"{s['name']}: {s.get('verdict', '?')}" for s in std)]
    return _clip_note(redact_uri("\n".join(lines)))


#: the description is a tag value: MLflow's limit (mlflow.utils.validation.MAX_TAG_VAL_LENGTH) is 8000 characters
NOTE_MAX = 8000


def _clip_note(text: str) -> str:
    if len(text) <= NOTE_MAX:
        return text
    tail = "\n\n... (cut at MLflow's 8000-character limit: the full account is in summary.json / report.html)"
    return text[:NOTE_MAX - len(tail)] + tail


# --- dataset input ----------------------------------------------------------------------------------------------

#: MLflow keeps at most this many characters of a dataset digest (``mlflow.utils.validation.MAX_DATASET_DIGEST_SIZE``
#: = 36 in MLflow 3.17); the manifest sha256 has 64 hex characters
DATASET_DIGEST_CHARS = 36


def dataset_input(summary: dict):
    """The run's dataset as an MLflow dataset (a :class:`mlflow.data.meta_dataset.MetaDataset`): name =
    ``summary["dataset"]["name"]``, source = ``summary["dataset"]["source"]`` (the manifest / dataset root; the name
    when the run has none), digest = the first :data:`DATASET_DIGEST_CHARS` hex characters of the manifest sha256,
    profile = the full sha256 and the sizes."""
    from mlflow.data.meta_dataset import MetaDataset

    ds = summary.get("dataset") or {}
    name = str(ds.get("name") or "dataset")
    source = ds.get("source")
    if isinstance(source, dict):
        source = next((source[k] for k in ("manifest", "csv", "path", "root", "uri") if source.get(k)), None)
    source = redact_uri(str(source or name))
    if source.lower().startswith(("http://", "https://")):
        from mlflow.data.http_dataset_source import HTTPDatasetSource

        src = HTTPDatasetSource(url=source)
    else:
        from mlflow.data.sources import LocalArtifactDatasetSource

        src = LocalArtifactDatasetSource(source)
    sha = str(ds.get("manifest_sha256") or "")
    profile = {"manifest_sha256": sha, "samples": ds.get("samples"), "subjects": ds.get("subjects"),
               "partitions": {p: len(v) for p, v in (ds.get("partitions") or {}).items() if isinstance(v, list)}}

    class _ManifestDataset(MetaDataset):
        # MetaDataset has no profile: ours carries the full manifest sha256 (the digest holds only its first 36
        # characters, MLflow's MAX_DATASET_DIGEST_SIZE)
        @property
        def profile(self):
            return profile

        def to_dict(self):
            return {**super().to_dict(), "profile": json.dumps(profile)}

    # MLflow refuses a digest longer than mlflow.utils.validation.MAX_DATASET_DIGEST_SIZE (36 characters): the digest
    # is the sha256's first 36 hex characters, the whole sha256 is in the profile and the input tag
    return _ManifestDataset(src, name=name, digest=sha[:DATASET_DIGEST_CHARS] or None)


def log_dataset_input(client, run_id: str, summary: dict, context: str = "eval") -> None:
    """Log :func:`dataset_input` as the run's dataset input (tags ``mlflow.data.context`` = ``context`` and
    ``manifest_sha256`` = the full sha256)."""
    from mlflow.entities import DatasetInput, InputTag

    ds = dataset_input(summary)
    tags = [InputTag("mlflow.data.context", context)]
    sha = str(_get(summary, "dataset", "manifest_sha256") or "")
    if sha:
        tags.append(InputTag("manifest_sha256", sha))
    client.log_inputs(run_id, datasets=[DatasetInput(ds._to_mlflow_entity(), tags=tags)])


def report_metrics(out_dir: Path) -> dict[str, float]:
    """Extra metrics the run's report computed (``report.json``: e.g. ``system_level/eval/expected_cost/value``)."""
    f = Path(out_dir) / "report.json"
    if not f.is_file():
        return {}
    try:
        m = json.loads(f.read_text()).get("metrics") or {}
    except ValueError:
        return {}
    return {k: float(v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
            and abs(v) != float("inf")}


#: CSV files of a run directory that are also logged as MLflow tables (``mlflow.log_table``: viewable and
#: comparable across runs in the UI's artifact view / evaluation tab)
TABLES = {"threshold_table.csv": "tables/threshold_table.json", "conditions.csv": "tables/conditions.json"}


def log_tables(out_dir: Path, run_id: str | None = None) -> None:
    """The :data:`TABLES` of ``out_dir`` as MLflow tables of ``run_id`` (default: the active run)."""
    import mlflow
    import pandas as pd

    for name, artifact in TABLES.items():
        f = Path(out_dir) / name
        if f.is_file() and f.stat().st_size > 1:
            df = pd.read_csv(f)
            if len(df):
                mlflow.log_table(data=df.astype(object).where(df.notna(), None), artifact_file=artifact, run_id=run_id)
