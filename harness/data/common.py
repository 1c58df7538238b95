"""What the database adapters share: problems found in a dataset root, and the manifest builder.

An adapter walks a database's own layout and protocol files and calls :meth:`ManifestBuilder.add` once per
file. The builder expands videos into one row per sampled frame, records every problem (missing file,
unreadable video, empty class, subject leak, a name or protocol line it cannot parse) with its path, and at
:meth:`~ManifestBuilder.build` either raises :class:`DatasetProblemsError` listing them (``on_problem:
error``, the default) or keeps going (``on_problem: warn``): a missing or unreadable file then stays in the
manifest as one row, which the scoring engine rejects with the reason, so it is counted, never dropped. The
problems are in ``manifest.attrs["problems"]``; ``python -m harness.data.check`` prints them all.

Containment: every sample path must resolve (symlinks followed) inside the dataset root, checked by
:func:`inside_root` before the file is looked at. A path that escapes it (``../../etc/hostname``, an absolute
path elsewhere, a symlink pointing out of the root) is a problem of kind ``outside_root`` naming the path as
given; its row stays in the manifest as a rejected sample (see below) with an empty ``path``, so it is never
opened, probed, hashed or scored, and the run's accounting counts it without naming the outside path. The dataset
config opts out with ``allow_outside_root: true`` (default false).

Rows set aside: a row that can be set aside without refusing the dataset (``outside_root``, ``duplicate_row``,
``missing``, ``is_directory``, ``special_file``, an unreadable or empty video) keeps its manifest row with
``reject_code`` (a key of :data:`~harness.faces.decode.REJECT_CODES`) and ``reject_reason`` (one line naming the
row or file); the scoring engines mark such rows ``rejected`` without opening them. Good rows have ``""`` in both.
With ``on_problem: error`` the load still stops with the list; with ``warn`` it goes on. When every row is set
aside the load stops either way (nothing to score).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from harness.data.sample import LABELS, ManifestError, validate_manifest
from harness.data.video import FrameSampling, is_video, probe_video
from harness.faces.decode import DecodeError, file_problem, reject_code
from harness.paths import DataMissingError

ON_PROBLEM = ("error", "warn")
#: Metadata columns every adapter fills ("" when the database does not record it), for per-condition breakdowns.
META_COLUMNS = ("device", "session", "lighting", "scenario", "attack_type")
#: Columns describing video samples.
VIDEO_COLUMNS = ("video", "video_frames", "fps")
#: Manifest columns of a row set aside when the manifest is built ("" for good rows); see the module docstring.
REJECT_COLUMNS = ("reject_code", "reject_reason")
#: Problem kinds (``Problem.kind``) a manifest load records; the per-sample codes are ``REJECT_CODES``.
PROBLEM_KINDS: dict[str, str] = {
    "missing_file": "a listed file (or a folder the protocol needs) does not exist; its row is rejected as missing",
    "is_directory": "a listed sample path is a directory",
    "special_file": "a listed sample path is a FIFO, socket or device (never opened)",
    "unreadable_video": "a video that cannot be probed (rejected as unreadable_video or empty_video)",
    "duplicate_row": "a sample listed twice; the later row is rejected as duplicate_row",
    "outside_root": "a sample path resolving outside the dataset root (never opened)",
    "empty_class": "a split with no bona fide or no attack samples",
    "subject_leak": "a subject in two splits of a subject-disjoint protocol",
    "unparsed_name": "a file name the adapter cannot parse",
    "protocol_mismatch": "a protocol file disagrees with the files found",
    "unexpected_entry": "a file or folder where the layout has none",
    "unreadable_image": "(python -m harness.data.check --decode-images) a still image that does not decode",
}


class LayoutError(DataMissingError):
    """The dataset root exists but is not laid out as the database ships; names what was looked for."""


class DatasetProblemsError(ManifestError):
    """The dataset has problems (missing files, unreadable videos, subject leaks...); the message lists them."""

    def __init__(self, message: str, problems: list[Problem]):
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class Problem:
    kind: str  # a key of PROBLEM_KINDS
    message: str
    paths: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["paths"] = list(self.paths)
        return d


def format_problems(problems: list[Problem], limit: int = 12) -> str:
    lines = [f"  - {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


def inside_root(path: str | Path, root: str | Path) -> bool:
    """Whether ``path`` (relative paths are taken relative to ``root``) resolves inside ``root`` (or is it).

    Both are resolved with :func:`os.path.realpath`, which follows symlinks (lstat/readlink only): neither the
    path nor any link target is opened, so a FIFO or device outside the root is never touched. A path that
    cannot be resolved (embedded NUL byte, ...) counts as outside."""
    try:
        root_s = os.fspath(root)
        root_r = os.path.realpath(root_s)
        real = os.path.realpath(os.path.join(root_s, os.fspath(path)))  # an absolute path replaces root_s
        return os.path.commonpath([real, root_r]) == root_r
    except (OSError, ValueError, TypeError):
        return False


def config_flag(value, key: str) -> bool:
    """A yes/no config value (a bool, or ``true``/``false``/``1``/``0``/``yes``/``no``); anything else is a
    :class:`ValueError` naming ``key``, so that a typo never flips a safety switch."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    s = str(value).strip().lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no", ""):
        return False
    raise ValueError(f"{key} must be true or false, got {value!r}")


def settle_problems(df: pd.DataFrame, problems: list[Problem], on_problem: str, what: str) -> pd.DataFrame:
    """Record ``problems`` in ``df.attrs["problems"]``, then raise :class:`DatasetProblemsError` listing them
    (``on_problem: error``) or warn and return ``df`` (``warn``). ``what`` names the dataset and its root."""
    if on_problem not in ON_PROBLEM:
        raise ValueError(f"dataset.on_problem must be one of {ON_PROBLEM}, got {on_problem!r}")
    df.attrs["problems"] = [p.as_dict() for p in problems]
    if problems:
        msg = (f"{what}: {len(problems)} problem(s):\n{format_problems(problems)}\n"
               f"(python -m harness.data.check lists them all; dataset.on_problem=warn keeps going, with missing, "
               f"duplicate, unreadable or outside-the-root rows counted as rejected samples, never opened)")
        if on_problem == "error":
            raise DatasetProblemsError(msg, list(problems))
        warnings.warn(msg, stacklevel=3)
    return df


def clean_relative(rel: str) -> bool:
    """Whether ``rel`` is a plain relative path (no ``..``, not absolute): safe to show as a sample's name."""
    parts = Path(rel).parts
    return bool(parts) and not Path(rel).is_absolute() and ".." not in parts and "\0" not in rel


def with_reject_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with :data:`REJECT_COLUMNS` present and filled (``""`` = a good row)."""
    for c in REJECT_COLUMNS:
        df[c] = df[c].fillna("").astype(str) if c in df.columns else ""
    return df


def set_aside_duplicates(df: pd.DataFrame, problems: list[Problem], lines: list[int] | None = None,
                         file_name: str = "") -> pd.DataFrame:
    """Reject every later row that repeats a sample (the same ``sample_id``, or the same file and frame) as
    ``duplicate_row``, with a unique ``sample_id`` (``<id>@line<n>`` or ``<id>@dup<k>``); the first row is used.
    ``lines``: each row's line in ``file_name`` (a CSV), for the messages. Appends one problem per duplicate."""
    df = with_reject_columns(df)
    first_id: dict[str, int] = {}
    first_pf: dict[tuple[str, int], int] = {}
    ids = [str(x) for x in df["sample_id"]]
    taken = set(ids)
    paths, frames = [str(x) for x in df["path"]], [int(x) for x in df["frame"]]
    for i, sid in enumerate(ids):
        pf = (paths[i], frames[i]) if paths[i] else None
        j = first_id.get(sid)
        if j is None and pf is not None:
            j = first_pf.get(pf)
        if j is None:
            first_id[sid] = i
            if pf is not None:
                first_pf[pf] = i
            continue
        differ = [c for c in ("subject", "label", "species", "split") if c in df.columns
                  and str(df[c].iat[i]) != str(df[c].iat[j])]
        also = f" with a different {'/'.join(differ)}" if differ else ""
        if lines is not None:
            where, first = f"{file_name} line {lines[i]}", f"line {lines[j]}"
            new = f"{sid}@line{lines[i]}"
        else:
            where, first = f"{sid}", "an earlier row"
            k = 1
            while f"{sid}@dup{k}" in taken:
                k += 1
            new = f"{sid}@dup{k}"
        taken.add(new)
        msg = f"{where}: repeats {first} ({ids[j]}){also}; set aside as duplicate_row, the first row is used"
        problems.append(Problem("duplicate_row", msg, (ids[j],)))
        df.iat[i, df.columns.get_loc("sample_id")] = new
        df.iat[i, df.columns.get_loc("reject_code")] = "duplicate_row"
        df.iat[i, df.columns.get_loc("reject_reason")] = msg
    return df


def require_usable(df: pd.DataFrame, problems: list[Problem], what: str) -> None:
    """Stop (whatever ``on_problem`` says) when every row was set aside: nothing is left to score."""
    if len(df) and "reject_code" in df.columns and (df["reject_code"] != "").all():
        raise DatasetProblemsError(f"{what}: no usable samples: all {len(df)} row(s) were set aside; "
                                   f"{len(problems)} problem(s):\n{format_problems(problems)}", list(problems))


def read_text_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines of a protocol/list file (any line ending, BOM tolerated)."""
    text = Path(path).read_text(encoding="utf-8-sig", errors="replace")
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def require_root(root: str | Path | None, dataset: str, how_to_obtain: str) -> Path:
    """The dataset root as a Path, or :class:`DataMissingError` naming it and how to obtain the database."""
    if root is None or str(root).strip() in ("", "???"):
        raise DataMissingError(f"{dataset}: no dataset root configured: set dataset.root=<path>. {how_to_obtain}")
    p = Path(str(root)).expanduser()
    if not p.is_dir():
        raise DataMissingError(f"{dataset} dataset not found at {p}. {how_to_obtain}")
    return p


def find_dir(root: Path, names: tuple[str, ...] | list[str], depth: int = 2) -> Path | None:
    """The first directory under ``root`` (itself included, up to ``depth`` levels down) whose name is in ``names``
    (case-insensitive), breadth first."""
    want = {n.lower() for n in names}
    level = [root]
    for _ in range(depth + 1):
        nxt = []
        for d in level:
            if d.name.lower() in want and d != root:
                return d
            try:
                nxt.extend(sorted(c for c in d.iterdir() if c.is_dir()))
            except OSError:
                continue
        for d in nxt:
            if d.name.lower() in want:
                return d
        level = nxt
    return None


def find_file(root: Path, names: tuple[str, ...] | list[str], depth: int = 2) -> Path | None:
    """The first file under ``root`` (up to ``depth`` levels down) whose name is in ``names`` (case-insensitive)."""
    want = {n.lower() for n in names}
    level = [root]
    for _ in range(depth + 1):
        nxt = []
        for d in level:
            try:
                entries = sorted(d.iterdir())
            except OSError:
                continue
            for c in entries:
                if c.is_file() and c.name.lower() in want:
                    return c
                if c.is_dir():
                    nxt.append(c)
        level = nxt
    return None


@dataclass
class ManifestBuilder:
    """Collects rows and problems for one dataset root; see the module docstring.

    ``allow_outside_root`` (the dataset config's key of that name, default false) admits sample paths that
    resolve outside ``root``; otherwise :meth:`add` rejects them as ``outside_root`` problems without opening them."""

    dataset: str
    root: Path
    how_to_obtain: str = ""
    frames: FrameSampling | dict | str | None = None
    allow_outside_root: bool = False
    rows: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self):
        self.root = Path(self.root)
        self.frames = FrameSampling.parse(self.frames)
        self.allow_outside_root = config_flag(self.allow_outside_root, "dataset.allow_outside_root")

    def problem(self, kind: str, message: str, *paths) -> None:
        self.problems.append(Problem(kind, message, tuple(str(p) for p in paths)))

    def rel(self, path: Path) -> str:
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return Path(path).as_posix()

    def add(self, path: str | Path, subject: str, label: str, species: str, split: str,
            sampling: FrameSampling | None = None, **meta) -> int:
        """Add one file (a still image, or a video expanded to its sampled frames). Returns the rows added.

        A path that resolves outside the root (symlinks followed) is recorded as an ``outside_root`` problem and
        kept as one rejected row with an empty path (named by its relative path when that is a plain name inside
        the root, else ``outside_root:<n>``), before anything looks at the file, unless ``allow_outside_root``. A
        missing file, a directory, a FIFO/device and a video that does not probe are kept as one rejected row
        with their code (module docstring)."""
        path = Path(path)
        rel = self.rel(path)
        base = dict(subject=str(subject), label=label, species=species, split=str(split))
        for c in META_COLUMNS:
            v = meta.pop(c, None)
            base[c] = "" if v is None else str(v)
        base.update(meta)
        if not self.allow_outside_root and not inside_root(path, self.root):
            self.problem("outside_root", f"{rel} (subject {subject}, {label}, split {split}) resolves outside the "
                                         f"dataset root {self.root}; set aside, not read (dataset.allow_outside_root="
                                         f"true admits it)", rel)
            n = sum(p.kind == "outside_root" for p in self.problems)
            sid = rel if clean_relative(rel) else f"outside_root:{n}"
            self.rows.append(dict(sample_id=sid, path="", frame=-1, video="", video_frames=0, fps=0.0, **base,
                                  reject_code="outside_root",
                                  reject_reason=f"{sid}: resolves outside the dataset root; not read"))
            return 1
        bad = file_problem(path)
        if bad is not None:
            kind = "missing_file" if bad[0] == "missing" else bad[0]
            self.problem(kind, f"{path} (subject {subject}, {label}, split {split})" + (
                "" if bad[0] == "missing" else f": {bad[1]}"), path)
        if not is_video(path):
            self.rows.append(dict(sample_id=rel, path=os.path.abspath(path), frame=-1, video="", video_frames=0,
                                  fps=0.0, **base, reject_code=bad[0] if bad else "",
                                  reject_reason=f"{bad[1]}: {path}" if bad else ""))
            return 1
        info = None
        if bad is None:
            try:
                info = probe_video(path)
            except DecodeError as e:
                self.problem("unreadable_video", str(e), path)
                bad = (reject_code(e), str(e))
        if info is None:  # keep it, as one row rejected with the reason (never decoded again)
            self.rows.append(dict(sample_id=f"{rel}#0", path=os.path.abspath(path), frame=0, video=rel, video_frames=0,
                                  fps=0.0, **base, reject_code=bad[0],
                                  reject_reason=bad[1] if str(path) in bad[1] else f"{bad[1]}: {path}"))
            return 1
        idx = (sampling or self.frames).indices(info.frames, fps=info.fps)
        for i in idx:
            self.rows.append(dict(sample_id=f"{rel}#{i}", path=os.path.abspath(path), frame=int(i), video=rel,
                                  video_frames=info.frames, fps=round(info.fps, 3), **base))
        return len(idx)

    def build(self, on_problem: str = "error", subject_disjoint: bool = True,
              expected_splits: list[str] | tuple[str, ...] | None = None,
              expected_labels: tuple[str, ...] = LABELS) -> pd.DataFrame:
        """The validated manifest; checks subject leaks and empty classes, then raises or warns per ``on_problem``."""

        if on_problem not in ON_PROBLEM:
            raise ValueError(f"dataset.on_problem must be one of {ON_PROBLEM}, got {on_problem!r}")
        if not self.rows:
            raise LayoutError(
                f"{self.dataset}: no samples found under {self.root}; is this the database's root folder? "
                f"{self.how_to_obtain}")
        df = pd.DataFrame(self.rows)
        df = set_aside_duplicates(df, self.problems)
        require_usable(df, self.problems, f"{self.dataset} at {self.root}")
        for c in (*META_COLUMNS, "video", *REJECT_COLUMNS):
            df[c] = df[c].fillna("").astype(str)
        extra = [c for c in df.columns if c not in (*META_COLUMNS, "video", "video_frames", "fps", "frame")]
        for c in extra:
            if df[c].dtype == object:
                df[c] = df[c].fillna("")
        if subject_disjoint:
            self.problems.extend(find_subject_leaks(df))
        for split in (expected_splits if expected_splits is not None else sorted(df["split"].unique())):
            in_split = df[df["split"] == split]
            for label in expected_labels:
                if not (in_split["label"] == label).any():
                    self.problem("empty_class", f"no {label} samples in split {split!r} of {self.dataset} under "
                                                f"{self.root}", self.root)
        df = validate_manifest(df, source=f"{self.dataset} at {self.root}")
        df.attrs["dataset"] = self.dataset
        df.attrs["root"] = str(self.root)
        df.attrs["frames"] = self.frames.describe()
        return settle_problems(df, self.problems, on_problem, f"{self.dataset} at {self.root}")


def problems_of(manifest: pd.DataFrame) -> list[Problem]:
    """The problems an adapter recorded for ``manifest`` (empty for adapters that do not record any)."""
    return [Problem(p["kind"], p["message"], tuple(p.get("paths", ()))) for p in manifest.attrs.get("problems", [])]


def _examples(files: pd.Series, k: int = 2) -> str:
    vals = list(dict.fromkeys(files))
    s = ", ".join(vals[:k])
    return s + (f" (+{len(vals) - k} more)" if len(vals) > k else "")


def find_subject_leaks(df: pd.DataFrame, split_col: str = "split", ignore_splits=()) -> list[Problem]:
    """One problem per subject present in more than one split, naming the subject and its files in each split."""
    d = df[~df[split_col].isin(list(ignore_splits))]
    if d.empty:
        return []
    file_col = "video" if "video" in d.columns else "path"
    files = d[file_col].where(d[file_col].astype(str) != "", d["path"]) if file_col == "video" else d["path"]
    d = d.assign(_file=files)
    n_splits = d.groupby("subject")[split_col].nunique()
    out = []
    for subj in sorted(n_splits[n_splits > 1].index):
        g = d[d["subject"] == subj]
        parts, paths = [], []
        for split, gg in g.groupby(split_col):
            parts.append(f"{split} ({gg['_file'].nunique()} file(s), e.g. {_examples(gg['_file'])})")
            paths.extend(list(dict.fromkeys(gg["path"]))[:2])
        out.append(Problem("subject_leak", f"subject {subj} appears in splits " + " and ".join(parts), tuple(paths)))
    return out
