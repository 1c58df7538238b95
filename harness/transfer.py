"""``python -m harness.transfer``: thresholds chosen on finished runs, evaluated on others (threshold transfer).

    python -m harness.transfer select=RUN_A:dev eval=RUN_B,RUN_C:eval            # A -> B, C (bob pad cross)
    python -m harness.transfer preset=ocim runs=RUN_O,RUN_C,RUN_I,RUN_M            # OCIM leave-one-dataset-out
    python -m harness.transfer preset=leave_one_dataset_out runs=R1,R2,R3          # any list of databases
    python -m harness.transfer preset=leave_one_species_out run=RUN [species=print]   # unseen attack species

Arguments are ``key=value``: ``select`` / ``eval`` (comma-separated ``RUN_DIR[:PARTITION]``, partition ``dev``,
``train``, ``eval`` or ``all``; default ``dev`` for select, ``all`` for eval), ``runs`` / ``run`` (presets),
``preset`` (``conf/transfer/<name>.yaml``), ``select_partition`` / ``eval_partition`` / ``species`` (preset keys),
``policy`` (a ``conf/policy/`` name; default: the first selection run's own policy) and ``policy.<key>=<value>``,
``out`` (default ``<results>/transfers/<date>/<time>-<name>-<suffix>``), ``tracking`` (``mlflow``, default, or
``none``), ``name``, ``unit`` (``frame``, default, or ``presentation``: the runs' per-video / per-group tables, as
ISO/IEC 30107-3 counts presentations and the official video protocols report per video). Thresholds are chosen with the run's policy machinery (:mod:`harness.transfer_eval`), not
with ``policy.select_on`` (which chooses inside one run).

The transfer directory holds ``transfer.json`` (the one source of numbers), ``transfer_table.csv`` and
``transfer.md`` / ``transfer.html`` (:mod:`harness.report.transfer`); the same is logged as an MLflow run
(:func:`harness.run_lifecycle.tracked_run`, metrics ``transfer/<fold>/<target>/<rate>/{k,n,value,lo,hi,n_subjects}``).
Bad input (missing run directory, a partition the run lacks, a file changed after the run wrote it, an unknown key)
stops in one line naming it (exit 2).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from harness.jsonsafe import finite, json_default
from harness.transfer_eval import transfer
from harness.transfer_presets import preset_folds
from harness.transfer_runs import TransferInputError, check_same_models, load_run, parse_spec

KEYS = ("select", "eval", "runs", "run", "preset", "select_partition", "eval_partition", "species", "policy",
        "out", "tracking", "name", "unit")
FORMAT_VERSION = "1.0"


def parse_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """``key=value`` arguments -> (keys, ``policy.<key>=<value>`` overrides); an unknown key is one line."""
    args: dict[str, str] = {}
    overrides: list[str] = []
    for a in argv:
        if "=" not in a:
            raise TransferInputError(f"argument {a!r} is not key=value (keys: {', '.join(KEYS)}, policy.<key>)")
        k, v = a.split("=", 1)
        if k.startswith("policy."):
            overrides.append(f"{k[len('policy.'):]}={v}")
        elif k in KEYS:
            args[k] = v
        else:
            raise TransferInputError(f"unknown key {k!r} (keys: {', '.join(KEYS)}, policy.<key>)")
    return args, overrides


def load_preset(name: str) -> dict:
    """``conf/transfer/<name>.yaml`` (one line naming the available presets when there is none)."""
    import yaml

    from harness.paths import conf_dir

    folder = conf_dir() / "transfer"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        avail = sorted(p.stem for p in folder.glob("*.yaml"))
        raise TransferInputError(f"preset={name}: no {path} (available: {', '.join(avail)})")
    return yaml.safe_load(path.read_text()) or {}


def resolve_policy(args: dict, overrides: list[str], first_run) -> dict:
    """``policy=<name>`` (``conf/policy/``) or the first selection run's own policy, with ``policy.<key>``."""
    from harness.export.reselect import load_policy

    try:
        if args.get("policy"):
            return load_policy(args["policy"], overrides)
        pol = dict(first_run.config.get("policy") or {})
        if not pol:
            raise TransferInputError(f"{first_run.run_dir}: run_config.json has no policy; give policy=<name>")
        return load_policy(str(pol.get("name", "target_rates")), [f"{k}={json.dumps(v)}" for k, v in pol.items()
                                                                   if k != "name"] + overrides)
    except ValueError as e:
        if isinstance(e, TransferInputError):
            raise
        raise TransferInputError(f"policy: {e}") from None


def _specs(text: str | None, default: str, unit: str) -> list[tuple[Any, str]]:
    out = []
    for s in [x for x in (text or "").split(",") if x.strip()]:
        path, part = parse_spec(s, default)
        out.append((load_run(path, unit=unit), part))
    return out


def build_folds(args: dict) -> tuple[list[dict], dict]:
    """The folds (:mod:`harness.transfer_presets`) and the preset of the command."""
    preset = load_preset(args["preset"]) if args.get("preset") else {"kind": "pair"}
    for key in ("select_partition", "eval_partition", "species"):
        if args.get(key):
            preset[key] = args[key].split(",") if key == "species" else args[key]
    unit = args.get("unit", "frame")
    loaded: dict[str, Any] = {"select": _specs(args.get("select"), "dev", unit),
                              "eval": _specs(args.get("eval"), "all", unit)}
    if args.get("runs"):
        loaded["runs"] = [load_run(parse_spec(s, "all")[0], unit=unit) for s in args["runs"].split(",") if s.strip()]
    if args.get("run"):
        loaded["run"] = load_run(parse_spec(args["run"], "all")[0], unit=unit)
    return preset_folds(preset, loaded), preset


def run_transfer(argv: list[str]) -> dict:
    """Run the command (module docstring); returns ``transfer.json``'s content with ``out_dir``."""
    args, overrides = parse_args(argv)
    folds, preset = build_folds(args)
    first = folds[0]["select"][0][0]
    policy = resolve_policy(args, overrides, first)
    for f in folds:
        check_same_models([r for r, _ in f["select"]], [r for r, _ in f["targets"]])
    name = args.get("name") or preset.get("name") or args.get("preset") or "transfer"
    doc = {"format": "harness-transfer", "format_version": FORMAT_VERSION, "name": name,
           "title": preset.get("title", "Threshold transfer"), "protocol": preset.get("protocol"),
           "preset": {k: v for k, v in preset.items() if k not in ("title", "protocol")},
           "policy": policy, "unit": args.get("unit", "frame"), "arguments": list(argv), "folds": []}
    for f in folds:
        body = transfer(f["select"], f["targets"], policy, drop_species=tuple(f["drop_species"]),
                        where=f"{f['name']} (selection)")
        doc["folds"].append({"name": f["name"], **body})
    out_dir = out_directory(args.get("out"), name)
    write_transfer(out_dir, doc)
    if args.get("tracking", "mlflow") != "none":
        doc["mlflow_run_id"] = log_transfer(out_dir, doc)
        write_transfer(out_dir, doc)
    doc["out_dir"] = str(out_dir)
    return doc


def out_directory(out: str | None, name: str) -> Path:
    """``out`` (created), else a fresh ``<results>/transfers/<date>/<time>-<name>-<suffix>``."""
    if out:
        p = Path(out)
        p.mkdir(parents=True, exist_ok=True)
        return p
    from harness.paths import results_root
    from harness.resolvers import unique_run_dir

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    return unique_run_dir(results_root() / "transfers" / time.strftime("%Y-%m-%d") / f"{time.strftime('%H-%M-%S')}-{safe}")


def write_transfer(out_dir: Path, doc: dict) -> None:
    """``transfer.json``, ``transfer_table.csv``, ``transfer.md``, ``transfer.html``."""
    from harness.report.transfer import html_page, markdown, table

    clean = finite(json.loads(json.dumps(doc, default=json_default)))
    (out_dir / "transfer.json").write_text(json.dumps(clean, indent=2) + "\n")
    table(clean).to_csv(out_dir / "transfer_table.csv", index=False)
    (out_dir / "transfer.md").write_text(markdown(clean))
    (out_dir / "transfer.html").write_text(html_page(clean))


def transfer_metrics(doc: dict) -> dict[str, float]:
    """``transfer/<fold>/<target>/<rate>/<field>`` for the transferred rates, ``.../own/...`` for the own ones."""
    from harness.report.transfer import table
    from harness.tracking import guard_metric_names

    out: dict[str, float] = {}
    for i, fold in enumerate(doc["folds"]):
        for _, row in table({"folds": [fold]}).iterrows():
            key = re.sub(r"[^A-Za-z0-9_./-]+", "_", f"transfer/{i}/{row['target']}/{row['rate']}")
            for side in ("transferred", "own"):
                for f in ("k", "n", "value", "lo", "hi", "n_subjects"):
                    v = row[f"{side}_{f}"]
                    if v is not None and v == v:
                        out[f"{key}/{side}/{f}"] = float(v)
    return guard_metric_names(out)


def log_transfer(out_dir: Path, doc: dict) -> str:
    """One MLflow run for the transfer (params: arguments and policy; metrics: :func:`transfer_metrics`; tags;
    the transfer directory as artifacts), through the run lifecycle every run uses. Returns its run id."""
    from mlflow.entities import Metric
    from omegaconf import OmegaConf

    from harness.paths import results_root
    from harness.run_lifecycle import tracked_run

    cfg = OmegaConf.create({"run_name": f"transfer-{doc['name']}", "results_dir": str(results_root()),
                            "tracking": {"enabled": True, "uri": f"sqlite:///{results_root()}/mlflow.db",
                                         "experiment": "face-pad-harness"},
                            "transfer": {"arguments": " ".join(doc["arguments"]), "policy": doc["policy"]}})
    tags = {"kind": "transfer", "folds": str(len(doc["folds"])),
            "context_ok": str(all(t["context"]["ok"] for f in doc["folds"] for t in f["targets"])).lower()}
    with tracked_run(cfg, out_dir, tags=tags) as tracker:
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in transfer_metrics(doc).items()]
        for s in range(0, len(metrics), 900):
            tracker.client.log_batch(tracker.run_id, metrics=metrics[s:s + 900])
        tracker.log_artifacts(out_dir)
        return tracker.run_id


def main(argv: list[str] | None = None) -> int:
    """Console entry point: prints the markdown table and the transfer directory; bad input is one line, exit 2."""
    from harness.report.transfer import markdown

    try:
        doc = run_transfer(sys.argv[1:] if argv is None else argv)
    except (TransferInputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown(finite(json.loads(json.dumps(doc, default=json_default)))))
    print(f"transfer directory: {doc['out_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
