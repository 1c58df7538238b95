"""Generic CSV manifest for in-house data (and the shared faceapi_bbt / silentface fixtures).

The CSV needs ``path, subject, label`` (``attack_type`` or ``species`` for attacks, ``split`` optional);
``path`` is relative to the CSV's folder unless absolute. Extra columns are kept as metadata.

Every path must resolve (symlinks followed) inside the dataset root, the CSV's folder unless ``root`` is given:
a row whose path escapes it (``../../etc/hostname``, ``/etc/passwd``, a symlink pointing out) is an
``outside_root`` problem naming the CSV line and the path as written; the row is kept as a rejected sample named
``<csv name>:line<n>`` with an empty path, never opened. ``allow_outside_root: true`` in the dataset config
admits such paths.

Per-row problems set a row aside (kept, rejected with a code, never opened): ``outside_root``, ``missing`` (no
file, or an empty path cell), ``is_directory``, ``special_file`` (FIFO, device), ``duplicate_row`` (a later row
repeating a sample: the same file and frame, or the same ``sample_id``), and a video that does not probe
(``unreadable_video`` / ``empty_video``). ``on_problem: error`` (default) stops with the list, ``warn`` keeps going
with them counted. A row naming a video file with no ``frame`` (or frame -1) becomes one row per sampled frame
(``frames``, as for the database adapters). A broken manifest as a whole stops with one line naming the file, the
line and the column: no header (empty file), header only, a missing column, an unknown label or species, label and
species that disagree, an empty subject, a bad frame index. The file is read as UTF-8 with or without a BOM, with
any line ending.
"""

from __future__ import annotations

import codecs
import csv as _csv
import io
import os
from pathlib import Path

import pandas as pd

from harness.data.common import (ON_PROBLEM, Problem, config_flag, inside_root, require_usable, set_aside_duplicates,
                                 settle_problems)
from harness.data.registry import register_dataset
from harness.data.sample import LABELS, SPECIES, ManifestError, validate_manifest
from harness.data.video import FrameSampling, is_video, probe_video
from harness.faces.decode import DecodeError, file_problem, reject_code
from harness.paths import DataMissingError


codecs.lookup("utf-8-sig")  # load the codec now, not while a manifest is read (nothing but the dataset is opened then)


def _read_records(csv: Path) -> list[tuple[int, list[str]]]:
    """``(line, cells)`` of every non-blank record, the header first: UTF-8 with or without a BOM, any line
    ending (LF, CRLF, CR), quoted cells over several lines. Unreadable text is a one-line :class:`ManifestError`."""
    try:
        raw = csv.read_bytes()
    except OSError as e:
        raise ManifestError(f"{csv}: cannot read the manifest ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ManifestError(f"{csv} line {line}: not UTF-8 text (byte {e.start}); save the manifest as UTF-8") from None
    reader = _csv.reader(io.StringIO(text, newline=""))
    out, end = [], 0
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            if any(c.strip() for c in cells):
                out.append((start, [c.strip() for c in cells]))
    except _csv.Error as e:
        raise ManifestError(f"{csv} line {reader.line_num}: not a readable CSV row ({e})") from None
    return out


def _bad_rows(csv: Path, bad: list[tuple[int, str, str]]) -> None:
    """Raise one line naming the file, the first bad row and its column (and how many more rows are bad)."""
    if bad:
        line, col, what = bad[0]
        more = f" ({len(bad) - 1} more bad row(s))" if len(bad) > 1 else ""
        raise ManifestError(f"{csv} line {line}, column {col!r}: {what}{more}")


def _header(csv: Path) -> tuple[int, list[str], list[tuple[int, list[str]]]]:
    """``(header line, column names, sample records)`` of ``csv``, checked: not empty, no repeated column, the
    required columns present, at least one sample row."""
    records = _read_records(csv)
    if not records:
        raise ManifestError(f"{csv}: empty file: no header row (expected columns path, subject, label)")
    (hline, header), records = records[0], records[1:]
    header = [h or f"unnamed_{k}" for k, h in enumerate(header)]
    dup_cols = sorted({h for h in header if header.count(h) > 1})
    if dup_cols:
        raise ManifestError(f"{csv} line {hline} (header): column(s) {dup_cols} appear more than once")
    for col in ("path", "subject", "label"):
        if col not in header:
            raise ManifestError(f"{csv} line {hline} (header): missing column {col!r} (have {header})")
    if not records:
        raise ManifestError(f"{csv}: header only, no sample rows")
    return hline, header, records


def _parse_rows(csv: Path, header: list[str], records: list[tuple[int, list[str]]],
                default_split: str) -> tuple[list[dict], list[int]]:
    """One dict per sample row (subject, label, species, split, frame checked and normalised) and its line;
    every bad cell is collected and the first raised in one line (:func:`_bad_rows`)."""
    scol = "species" if "species" in header else ("attack_type" if "attack_type" in header else None)
    rows, lines, bad = [], [], []
    for line, cells in records:
        if len(cells) > len(header):
            raise ManifestError(f"{csv} line {line}: {len(cells)} cells but the header has {len(header)} columns")
        r = dict(zip(header, cells + [""] * (len(header) - len(cells))))
        if not r["subject"]:
            bad.append((line, "subject", "empty subject"))
        if r["label"] not in LABELS:
            bad.append((line, "label", f"unknown label {r['label']!r}; expected one of {LABELS}"))
            continue
        sp = r[scol] if scol else "none"
        if r["label"] == "bona_fide" and sp == "":
            sp = "none"
        if sp not in SPECIES:
            bad.append((line, scol, f"unknown attack species {sp!r}; vocabulary: {SPECIES}"))
        elif (r["label"] == "bona_fide") != (sp == "none"):
            bad.append((line, scol or "label", f"label and species disagree ({r['label']!r} with species {sp!r}; "
                                               f"bona_fide <=> species 'none')"))
        r["species"] = sp
        r["split"] = r.get("split") or default_split
        try:
            r["frame"] = int(r["frame"]) if r.get("frame", "") != "" else -1
        except ValueError:
            bad.append((line, "frame", f"not a frame index: {r['frame']!r}"))
        rows.append(r)
        lines.append(line)
    _bad_rows(csv, bad)
    return rows, lines


def _identifier(base: Path):
    """``ident(full path)``: the path relative to the CSV's folder ``base`` when it is inside it, else as is."""
    base_r = os.path.realpath(base)

    def ident(full: str) -> str:
        real = os.path.realpath(full)
        if os.path.commonpath([real, base_r]) == base_r:
            return Path(os.path.relpath(real, base_r)).as_posix()
        return full

    return ident


def _resolve_paths(csv: Path, rows: list[dict], lines: list[int], bound: Path, allow_outside_root: bool,
                   has_ids: bool, ident, problems: list[Problem]) -> None:
    """In place: each row's absolute path and sample id, or its reject code and reason (empty path, outside the
    dataset root: set aside before anything looks at the file, missing or unreadable file)."""
    base = csv.parent  # what relative paths are relative to
    for r, line in zip(rows, lines):
        p, where = r["path"], f"{csv.name} line {line}"
        r["reject_code"] = r["reject_reason"] = ""
        if not p:
            r.update(sample_id=r.get("sample_id") or f"{csv.name}:line{line}", path="", reject_code="missing",
                     reject_reason=f"{where}: column 'path' is empty")
            problems.append(Problem("missing_file", r["reject_reason"], ()))
        elif not allow_outside_root and not inside_root(base / p, bound):  # before anything looks at the file
            problems.append(Problem("outside_root", f"{where}: path {p!r} resolves outside the dataset root {bound}; "
                                                    f"set aside, not read (dataset.allow_outside_root=true admits it)",
                                    (p,)))
            r.update(sample_id=r.get("sample_id") or f"{csv.name}:line{line}", path="", frame=-1,
                     reject_code="outside_root",
                     reject_reason=f"{where}: the path resolves outside the dataset root; not read")
        else:
            full = str(p if Path(p).is_absolute() else (base / p).resolve())
            r["path"] = full
            if not has_ids or not r.get("sample_id"):
                r["sample_id"] = f"{ident(full)}#{r['frame']}"
            trouble = file_problem(full)
            if trouble is not None:
                code, what = trouble
                problems.append(Problem("missing_file" if code == "missing" else code, f"{where}: {what}: {p!r}", (p,)))
                r.update(reject_code=code, reject_reason=f"{where}: {what}: {p}")


def _expand_videos(csv: Path, rows: list[dict], lines: list[int], sampling: FrameSampling, ident,
                   problems: list[Problem]) -> tuple[list[dict], list[int], bool]:
    """``(rows, lines, any video)``: each usable video row (``frame`` -1) replaced by one row per sampled frame;
    an unreadable video becomes one rejected row (frame 0)."""
    out, out_lines, videos = [], [], False
    for r, line in zip(rows, lines):
        if r["reject_code"] or r["frame"] != -1 or not is_video(r["path"]):
            out.append(r)
            out_lines.append(line)
            continue
        videos = True
        sid = r["sample_id"][:-3] if r["sample_id"].endswith("#-1") else r["sample_id"]
        vid = ident(r["path"])
        try:
            info = probe_video(r["path"])
        except DecodeError as e:
            problems.append(Problem("unreadable_video", f"{csv.name} line {line}: {e}", (r["path"],)))
            out.append(r | dict(sample_id=f"{sid}#0", frame=0, video=vid, video_frames=0, fps=0.0,
                                reject_code=reject_code(e), reject_reason=f"{csv.name} line {line}: {e}"))
            out_lines.append(line)
            continue
        for i in sampling.indices(info.frames, fps=info.fps):
            out.append(r | dict(sample_id=f"{sid}#{i}", frame=int(i), video=vid, video_frames=info.frames,
                                fps=round(info.fps, 3)))
            out_lines.append(line)
    return out, out_lines, videos


def read_csv_manifest(csv: Path, default_split: str = "test", how_to_obtain: str = "", root: str | Path | None = None,
                      allow_outside_root: bool = False, on_problem: str = "error", frames=None) -> pd.DataFrame:
    """The manifest of ``csv`` (module docstring); paths outside ``root`` (default: the CSV's folder) are problems."""
    csv = Path(csv)
    allow_outside_root = config_flag(allow_outside_root, "dataset.allow_outside_root")
    if on_problem not in ON_PROBLEM:
        raise ValueError(f"dataset.on_problem must be one of {ON_PROBLEM}, got {on_problem!r}")
    sampling = FrameSampling.parse(frames)
    if not csv.is_file():
        hint = f" {how_to_obtain}" if how_to_obtain else ""
        raise DataMissingError(f"dataset manifest not found: {csv}{' (a directory)' if csv.is_dir() else ''}.{hint}")
    _hline, header, records = _header(csv)
    rows, lines = _parse_rows(csv, header, records, default_split)
    bound = csv.parent if root is None else Path(root)  # the dataset root the paths must stay in
    ident = _identifier(csv.parent)
    problems: list[Problem] = []
    _resolve_paths(csv, rows, lines, bound, allow_outside_root, "sample_id" in header, ident, problems)
    df = set_aside_duplicates(pd.DataFrame(rows), problems, lines, csv.name)
    for r, sid, code, why in zip(rows, df["sample_id"], df["reject_code"], df["reject_reason"]):
        r.update(sample_id=sid, reject_code=code, reject_reason=why)

    out, out_lines, videos = _expand_videos(csv, rows, lines, sampling, ident, problems)
    df = pd.DataFrame(out)
    if videos:
        for c, v in (("video", ""), ("video_frames", 0), ("fps", 0.0)):
            df[c] = df[c].fillna(v) if c in df.columns else v
        df = set_aside_duplicates(df, problems, out_lines, csv.name)  # generated frame ids meeting given ones
    df["frame"] = df["frame"].astype(int)
    what = f"{csv} (dataset root {bound})"
    require_usable(df, problems, what)
    df = validate_manifest(df, source=str(csv))
    df.attrs["root"] = str(bound)
    if videos:
        df.attrs["frames"] = sampling.describe()
    return settle_problems(df, problems, on_problem, what)


@register_dataset("csv")
def load_csv(csv: str, default_split: str = "test", root: str | None = None, allow_outside_root: bool = False,
             on_problem: str = "error", frames=None, **_) -> pd.DataFrame:
    """Any CSV manifest (see module docstring). ``root``: the dataset root the paths must stay in (default: the
    CSV's folder); ``allow_outside_root``: admit paths outside it; ``on_problem``: ``error`` | ``warn``;
    ``frames``: which frames of a video row become samples (``dataset.frames``, default 10 uniform)."""
    return read_csv_manifest(Path(csv), default_split=default_split, root=root, allow_outside_root=allow_outside_root,
                             on_problem=on_problem, frames=frames)
