"""Check a dataset root: ``python -m harness.data.check [check] <dataset overrides> [--no-decode] [--decode-images]``.

The overrides are the experiment's own (Hydra) dataset options, e.g.::

    python -m harness.data.check dataset=oulu_npu dataset.root=/data/oulu dataset.protocol=3 dataset.fold=2
    python -m harness.data.check dataset=msu_mfsd_sample

It builds the manifest the experiment would use (keeping going past problems), test-decodes the first and last
sampled frame of every video (``--no-decode`` skips that; ``--decode-images`` also decodes every still image),
prints a summary table (subjects, samples per label, species and split, videos and frames) and then every problem
found - missing files, unreadable videos, empty classes, subject leaks, names it could not parse - with paths.
Exit status: 0 clean, 1 problems found, 2 the root or its layout is unusable.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter

import pandas as pd

from harness.data.common import Problem, problems_of
from harness.data.sample import LABELS, SPECIES


def _compose_dataset(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from harness.resolvers import CONF_DIR  # registers the ${harness_shared:} resolvers

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg.dataset, resolve=True)


def decode_check(df: pd.DataFrame, images: bool = False) -> list[Problem]:
    """Decode the first and last sampled frame of each video (and, with ``images``, every still image)."""
    from harness.faces.video import VideoReader
    from harness.faces.decode import DecodeError, decode_image

    out = []
    if "reject_code" in df.columns:  # rows set aside (outside the root, missing, duplicate...) are never opened
        df = df[df["reject_code"].astype(str) == ""]
    vids = df[(df["frame"] >= 0) & (df.get("video_frames", 1) != 0)]
    for path, g in vids.groupby("path", sort=True):
        idx = sorted({int(g["frame"].min()), int(g["frame"].max())})
        try:
            with VideoReader(path) as r:
                for i in idx:
                    r.frame(i)
        except DecodeError as e:
            out.append(Problem("unreadable_video", str(e), (path,)))
    if images:
        for path in sorted(set(df.loc[df["frame"] < 0, "path"])):
            try:
                with open(path, "rb") as fh:
                    decode_image(fh.read(), path)
            except (OSError, DecodeError) as e:
                out.append(Problem("unreadable_image", str(e), (path,)))
    return out


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per split (and ``all``): subjects, samples per label, videos, their frames, sampled frames, still images."""
    rows = []
    d = df.copy()
    d["_video"] = d["path"].where(d["frame"] >= 0, "")
    if "video" in d.columns:
        d["_video"] = d["video"].astype(str).where(d["video"].astype(str) != "", d["_video"])
    d["_vframes"] = d["video_frames"] if "video_frames" in d.columns else 0
    groups = [(s, g) for s, g in d.groupby("split", sort=True)] + [("all", d)]
    for split, g in groups:
        per_video = g[g["_video"] != ""].drop_duplicates("_video")
        row = {"split": split, "subjects": g["subject"].nunique()}
        for lab in LABELS:
            row[lab] = int((g["label"] == lab).sum())
        row.update(samples=len(g), images=int((g["frame"] < 0).sum()), videos=len(per_video),
                   video_frames=int(per_video["_vframes"].sum()), sampled_frames=int((g["frame"] >= 0).sum()))
        rows.append(row)
    return pd.DataFrame(rows).set_index("split")


def species_table(df: pd.DataFrame) -> pd.DataFrame:
    t = pd.crosstab(df["species"], df["split"], margins=True, margins_name="all")
    order = [s for s in SPECIES if s in t.index] + [s for s in t.index if s not in SPECIES]
    return t.loc[order]


def report(df: pd.DataFrame, problems: list[Problem], name: str = "", max_problems: int | None = None,
           root: str | None = None) -> str:
    lines = [f"dataset {name or df.attrs.get('dataset', '')} at {df.attrs.get('root', root or '?')}"
             + (f"  (video frames: {df.attrs['frames']})" if df.attrs.get("frames") and (df["frame"] >= 0).any() else "")]
    lines += ["", summary_table(df).to_string(), "", "samples per attack species and split:", species_table(df).to_string()]
    attack_types = df.loc[df["label"] == "attack", "attack_type"] if "attack_type" in df.columns else pd.Series(dtype=str)
    if len(attack_types) and (attack_types != "").any():
        lines += ["", "attack samples per attack type (the database's own names):",
                  df[df["label"] == "attack"].groupby(["attack_type", "split"]).size().unstack(fill_value=0).to_string()]
    lines.append("")
    if not problems:
        lines.append("no problems found")
    else:
        kinds = Counter(p.kind for p in problems)
        lines.append(f"{len(problems)} problem(s): " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
        shown = problems if max_problems is None else problems[:max_problems]
        lines += [f"  - {p}" for p in shown]
        if len(shown) < len(problems):
            lines.append(f"  ... and {len(problems) - len(shown)} more (--max-problems)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "check":
        argv = argv[1:]
    ap = argparse.ArgumentParser(prog="python -m harness.data.check", description=__doc__.split("\n\n")[0],
                                 epilog="overrides: dataset=<name> dataset.root=<path> dataset.<option>=<value> ...")
    ap.add_argument("--no-decode", action="store_true", help="do not test-decode video frames")
    ap.add_argument("--decode-images", action="store_true", help="also decode every still image")
    ap.add_argument("--max-problems", type=int, default=None, help="print at most this many problems")
    args, overrides = ap.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("-")]
    if bad:
        ap.error(f"unknown option(s) {bad}")

    from harness.data.registry import load_dataset
    from harness.data.sample import ManifestError
    from harness.faces.decode import DecodeError
    from harness.paths import DataMissingError

    try:
        ds = _compose_dataset(overrides)
        name = ds.pop("name")
        root = ds.get("root", ds.get("csv"))
        ds["on_problem"] = "warn"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = load_dataset(name, **ds)
    except (DataMissingError, ManifestError, DecodeError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except Exception as e:  # hydra config errors
        if type(e).__module__.startswith(("hydra", "omegaconf")):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
    problems = problems_of(df)
    if not args.no_decode:
        problems += decode_check(df, images=args.decode_images)
    print(report(df, problems, name=name, max_problems=args.max_problems, root=root))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
