"""Third-party scores as a dataset (``dataset=scores``): score files produced elsewhere (a vendor's SDK or API, another
toolkit) read instead of running models, so they go through the same trials, metrics, policies, verdicts, report,
export and MLflow as the harness's own models (:mod:`harness.vendor_scores` builds the score table and the trials).

Conventions: higher score = more likely the same person (match scores) / more likely bona fide (PAD scores), as
everywhere in the harness; a vendor whose score runs the other way must negate it before import. Every score must be
a finite number; a file that breaks a rule stops the run with one line naming the file, the row (the line number,
header = row 1) and the column.

**The documented CSV** (``.csv``; comma-separated, UTF-8, one header row). Each row is either a PAD score of one
sample (``ref_subject`` empty) or a comparison score of one probe sample against a reference (``ref_subject`` set):

=================  ======================================================================================
``id``             sample id (PAD rows: unique); on a comparison row, the probe sample's id - a comparison
                   is identified by (``id``, ``ref_subject``), and takes the PAD score of the PAD row with
                   the same ``id`` for the system-level rates
``subject``        the person shown (for an attack: the person impersonated)
``ref_subject``    comparison rows: the enrolled person compared against; empty on PAD rows
``label``          ``bona_fide`` | ``attack``
``species``        attacks: a species of :data:`harness.data.sample.SPECIES`; empty or ``unknown`` = not known
                   (reported as species ``unknown``); bona fide: empty or ``none``
``presentation``   the presentation (video / burst) the sample belongs to; may be empty
``score``          PAD rows: the PAD score; comparison rows: the match score
``frame``          optional: frame index in the presentation (default -1, a still)
``timestamp``      optional: capture time, kept as text
``partition``      optional: ``dev`` | ``eval`` (else the protocol partitions the people: seeded subject split,
                   or ``split`` with ``protocol.partition=split``)
``split``          optional: the database split (default ``dataset.default_split``)
``status``         optional: ``scored`` (default; also empty) | ``fta``: the vendor's SDK acquired no sample
                   (no face found, capture failed): a failure to acquire, with an empty ``score``
``reason``         optional: why (e.g. ``no face found``); kept as the sample's reason in the score table
=================  ======================================================================================

**Failures to acquire** (ISO/IEC 19795-1: a failure to acquire is an attempt for which the system could not
capture or extract a usable sample; ISO/IEC 30107-3 counts such presentations as non-responses of the PAD
subsystem). A row with ``status`` = ``fta`` has an empty ``score``; its sample ends with status ``fta`` in the score
table, exactly as a sample in which the harness's own detector found no face: it is counted in the accounting
(``fta``), it is a probe in the FTA-inclusive rates (the verification FTA rate, the system FRR / FAR / IAPAR, the
PAD non-response rates) and it yields no comparison. Every row of one ``id`` (its PAD row and its comparison rows)
must agree on the status. An empty ``score`` without ``status`` = ``fta`` is refused (one line naming the file,
row and column), as is a score on an ``fta`` row. bob score files have no such convention: every line is scored.

A comparison row is ``genuine`` (bona fide, ``subject == ref_subject``), ``impostor`` (bona fide, different people)
or ``attack`` (label ``attack``: the attack presented against ``ref_subject``'s enrolment).

**bob score files** (any other extension; whitespace-separated, ``#`` comments and blank lines skipped), as written
by bob.bio.base (``bob.bio.base.score.load.four_column`` / ``five_column``): 4 columns ``claimed_id real_id
test_label score`` or 5 columns ``claimed_id model_label real_id test_label score``. bob.pad.base writes PAD scores in
the 4-column layout with ``real_id`` = ``attack`` for attack presentations (``bob.pad.base.score.load``) and
``claimed_id`` = the client. A bob file is read (``dataset.bob_kind``) as:

* ``verification``: one comparison per line: probe ``test_label`` of person ``real_id`` against the model of
  ``claimed_id`` (genuine when equal, impostor otherwise); ``real_id`` = ``attack`` is an attack against
  ``claimed_id`` (bob.pad's marker);
* ``pad``: one PAD score per line of sample ``test_label`` of client ``claimed_id``; ``real_id`` = ``attack``
  marks an attack;
* ``auto`` (default): ``pad`` when no line compares two different people, else ``verification``.

bob files carry no species: their attacks get ``dataset.attack_species`` (default ``unknown``: PAD metrics are
pooled over all attacks) unless ``dataset.species_map`` (a CSV with columns ``test_label,species``) names them.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd

from harness.models.weights import sha256_file  # the score file identity an export records
from harness.data.registry import register_dataset
from harness.data.sample import LABELS, SPECIES, ManifestError, validate_manifest

FORMATS = ("auto", "csv", "bob4", "bob5")
BOB_KINDS = ("auto", "verification", "pad")
CSV_REQUIRED = ("id", "subject", "ref_subject", "label", "species", "presentation", "score")
CSV_OPTIONAL = ("frame", "timestamp", "partition", "split", "status", "reason")
#: a row's ``status``: scored, or a failure to acquire (empty score)
ROW_STATUSES = ("scored", "fta")
#: the reason of an ``fta`` row that names none
FTA_REASON = "failure to acquire reported in the score file (no reason given)"
#: bob.pad.base's ``real_id`` of an attack presentation
BOB_ATTACK = "attack"
#: the manifest attribute holding the imported comparisons, files and vendor (:func:`imported`)
ATTR = "score_import"
TRIAL_COLUMNS = ("probe_id", "probe_subject", "ref_subject", "label", "species", "match_score", "partition", "row",
                 "status")


class ScoreFileError(ManifestError):
    """A score file that cannot be read; the message names the file, the row and the column."""



def _where(path: Path, row: int, col: str) -> str:
    return f"{path}: row {row}, column {col!r}"


def parse_score(text: str, path: Path, row: int, col: str = "score") -> float:
    """``text`` as a finite float, or a one-line :class:`ScoreFileError` naming the file, row and column."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise ScoreFileError(f"{_where(path, row, col)}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise ScoreFileError(f"{_where(path, row, col)}: {text!r} is not a finite number (NaN / inf scores are refused)")
    return v


def species_of(label: str, species: str, path: Path, row: int, col: str = "species") -> str:
    """The species of a row: bona fide -> ``none``; attack with no species -> ``unknown``; else a known species."""
    species = species.strip()
    if label == "bona_fide":
        if species not in ("", "none"):
            raise ScoreFileError(f"{_where(path, row, col)}: a bona fide row has species {species!r} (expected empty "
                                 "or 'none')")
        return "none"
    if species in ("", "unknown"):
        return "unknown"
    if species not in SPECIES or species == "none":
        raise ScoreFileError(f"{_where(path, row, col)}: unknown attack species {species!r}; vocabulary: "
                             f"{[s for s in SPECIES if s != 'none']} (empty = unknown)")
    return species


def _status_score(rec: dict, path: Path, row: int) -> tuple[str, float, str]:
    """(status, score, reason) of a CSV row: ``fta`` rows have an empty score (NaN), ``scored`` ones a number."""
    status = str(rec.get("status") or "").strip() or "scored"
    if status not in ROW_STATUSES:
        raise ScoreFileError(f"{_where(path, row, 'status')}: {status!r} is not 'scored', 'fta' or empty")
    text = str(rec.get("score") or "").strip()
    reason = str(rec.get("reason") or "").strip()
    if status == "fta":
        if text:
            raise ScoreFileError(f"{_where(path, row, 'score')}: {text!r} on a row with status 'fta' (a failure to "
                                 "acquire carries no score: leave it empty)")
        return status, float("nan"), reason or FTA_REASON
    if not text:
        raise ScoreFileError(f"{_where(path, row, 'score')}: empty (a row without a score must have status 'fta', "
                             "a failure to acquire)")
    return status, parse_score(text, path, row), reason


def _csv_row(rec: dict, path: Path, row: int, default_split: str) -> tuple[str, dict]:
    """One CSV row as ``("pad" | "trial", fields)``."""
    for col in ("id", "subject"):
        if not str(rec.get(col) or "").strip():
            raise ScoreFileError(f"{_where(path, row, col)}: empty")
    label = str(rec["label"]).strip()
    if label not in LABELS:
        raise ScoreFileError(f"{_where(path, row, 'label')}: unknown label {label!r}; expected one of {list(LABELS)}")
    species = species_of(label, str(rec.get("species") or ""), path, row)
    part = str(rec.get("partition") or "").strip()
    if part not in ("", "dev", "eval"):
        raise ScoreFileError(f"{_where(path, row, 'partition')}: {part!r} is not 'dev', 'eval' or empty")
    frame = str(rec.get("frame") or "").strip()
    try:
        frame_no = int(frame) if frame else -1
    except ValueError:
        raise ScoreFileError(f"{_where(path, row, 'frame')}: {frame!r} is not a whole number") from None
    status, score, reason = _status_score(rec, path, row)
    f = {"id": str(rec["id"]).strip(), "subject": str(rec["subject"]).strip(), "label": label, "species": species,
         "score": score, "status": status, "reason": reason, "partition": part, "row": f"{path}:{row}",
         "presentation": str(rec.get("presentation") or "").strip(), "frame": frame_no,
         "timestamp": str(rec.get("timestamp") or "").strip(),
         "split": str(rec.get("split") or "").strip() or default_split}
    ref = str(rec.get("ref_subject") or "").strip()
    return ("trial", f | {"ref_subject": ref}) if ref else ("pad", f)


def read_score_csv(path: Path, default_split: str = "test") -> tuple[list[dict], list[dict]]:
    """(PAD rows, comparison rows) of a documented score CSV (module docstring); one-line errors."""
    pads, trials, seen_pad, seen_trial = [], [], {}, {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = [str(c).strip() for c in (reader.fieldnames or [])]
        missing = [c for c in CSV_REQUIRED if c not in header]
        if missing:
            raise ScoreFileError(f"{path}: row 1 (header), column {missing[0]!r} is missing; required columns: "
                                 f"{list(CSV_REQUIRED)}, optional: {list(CSV_OPTIONAL)}")
        reader.fieldnames = header
        for row, rec in enumerate(reader, start=2):
            if None in rec or any(v is None for v in rec.values()):
                raise ScoreFileError(f"{path}: row {row}, column {header[-1]!r}: {len(header)} fields expected "
                                     "(the row has a different number of fields)")
            kind, f = _csv_row(rec, path, row, default_split)
            key = f["id"] if kind == "pad" else (f["id"], f["ref_subject"])
            seen = seen_pad if kind == "pad" else seen_trial
            if key in seen:
                what = "sample id" if kind == "pad" else "comparison (id, ref_subject)"
                raise ScoreFileError(f"{_where(path, row, 'id')}: duplicate {what} {key!r} (first at row {seen[key]})")
            seen[key] = row
            (pads if kind == "pad" else trials).append(f)
    return pads, trials


def _bob_lines(path: Path, fmt: str) -> list[tuple[int, list[str]]]:
    """The data lines of a bob score file with their row numbers; every line has the format's field count."""
    out, want = [], {"bob4": 4, "bob5": 5}.get(fmt)
    with open(path, encoding="utf-8") as fh:
        for row, line in enumerate(fh, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = line.split()
            want = want or (len(fields) if len(fields) in (4, 5) else 4)
            if len(fields) != want:
                raise ScoreFileError(f"{path}: row {row}, column 'score': {len(fields)} fields, a bob {want}-column "
                                     f"score file has {want} ({'claimed_id real_id test_label score' if want == 4 else 'claimed_id model_label real_id test_label score'})")
            out.append((row, fields if want == 4 else [fields[0], fields[2], fields[3], fields[4]]))
    return out


def read_species_map(path: str | Path | None) -> dict[str, str]:
    """``test_label -> species`` from a CSV with columns ``test_label,species`` (None: empty)."""
    if path is None:
        return {}
    p = Path(path)
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    for col in ("test_label", "species"):
        if col not in df.columns:
            raise ScoreFileError(f"{p}: row 1 (header), column {col!r} is missing; required columns: test_label, species")
    return {r.test_label: species_of("attack", r.species, p, i + 2) for i, r in enumerate(df.itertuples())}


def read_bob(path: Path, fmt: str = "auto", kind: str = "auto", species: dict | None = None,
             attack_species: str = "unknown", default_split: str = "test") -> tuple[list[dict], list[dict]]:
    """(PAD rows, comparison rows) of a bob 4- or 5-column score file (module docstring); one-line errors."""
    lines = _bob_lines(path, fmt)
    if kind == "auto":
        kind = "verification" if any(f[0] != f[1] and f[1] != BOB_ATTACK for _, f in lines) else "pad"
    if kind not in ("verification", "pad"):
        raise ScoreFileError(f"dataset.bob_kind must be one of {list(BOB_KINDS)}, got {kind!r}")
    species = species or {}
    pads, trials, seen = [], [], {}
    for row, (claimed, real, label_, score) in lines:
        attack = real == BOB_ATTACK
        sp = species_of("attack", species.get(label_, attack_species), path, row, "real_id") if attack else "none"
        f = {"id": label_, "subject": claimed if attack or kind == "pad" else real,
             "label": "attack" if attack else "bona_fide", "species": sp,
             "score": parse_score(score, path, row), "status": "scored", "reason": "", "partition": "",
             "row": f"{path}:{row}", "presentation": "",
             "frame": -1, "timestamp": "", "split": default_split}
        key = label_ if kind == "pad" else (label_, claimed)
        if key in seen:
            raise ScoreFileError(f"{_where(path, row, 'test_label')}: duplicate "
                                 f"{'sample' if kind == 'pad' else 'comparison (test_label, claimed_id)'} {key!r} "
                                 f"(first at row {seen[key]})")
        seen[key] = row
        (pads if kind == "pad" else trials).append(f if kind == "pad" else f | {"ref_subject": claimed})
    return pads, trials


def read_score_file(path: Path, fmt: str = "auto", **bob) -> tuple[list[dict], list[dict]]:
    """(PAD rows, comparison rows) of one score file: ``fmt`` ``csv`` / ``bob4`` / ``bob5``, or ``auto`` (``.csv``:
    the documented CSV; else a bob file, 4 or 5 columns by its first line)."""
    if fmt not in FORMATS:
        raise ScoreFileError(f"dataset.format must be one of {list(FORMATS)}, got {fmt!r}")
    if not path.is_file():
        raise ScoreFileError(f"{path}: score file not found (dataset.files)")
    if fmt == "csv" or (fmt == "auto" and path.suffix.lower() == ".csv"):
        return read_score_csv(path, bob.get("default_split", "test"))
    return read_bob(path, fmt, **bob)


def _manifest(pads: list[dict], trials: list[dict]) -> pd.DataFrame:
    """The sample rows: every PAD row, then every comparison probe without one (``has_pad`` False); a sample's
    ``imported_status`` / ``imported_reason`` are its rows' (:func:`check_status` made them agree)."""
    rows = [{**p, "has_pad": True} for p in pads]
    known = {p["id"] for p in pads}
    for t in trials:
        if t["id"] not in known:
            known.add(t["id"])
            rows.append({**t, "score": float("nan"), "has_pad": False})
    df = pd.DataFrame(rows)
    return pd.DataFrame({"sample_id": df["id"], "path": df["row"], "frame": df["frame"].astype(int),
                         "subject": df["subject"], "label": df["label"], "species": df["species"],
                         "split": df["split"], "presentation": df["presentation"], "timestamp": df["timestamp"],
                         "partition": df["partition"], "imported_pad_score": df["score"].astype(float),
                         "has_pad": df["has_pad"].astype(bool), "imported_status": df["status"],
                         "imported_reason": df["reason"]})


def check_status(pads: list[dict], trials: list[dict]) -> None:
    """Every row of one sample id (its PAD row, its comparison rows, in any file) has the same status; else one line
    naming the first row that disagrees and the row it disagrees with."""
    first: dict = {}
    for r in [*pads, *trials]:
        seen = first.setdefault(r["id"], r)
        if seen["status"] != r["status"]:
            file, row = r["row"].rsplit(":", 1)
            raise ScoreFileError(f"{file}: row {row}, column 'status': {r['status']!r} but {seen['row']} of the same id "
                                 f"{r['id']!r} is {seen['status']!r} (a sample either failed to acquire or was scored)")


def _duplicates_across(paths: list[Path], per_file: list[tuple[list[dict], list[dict]]]) -> None:
    seen: dict = {}
    for path, (pads, trials) in zip(paths, per_file):
        for kind, rows in (("pad", pads), ("trial", trials)):
            for r in rows:
                key = (kind, r["id"], r.get("ref_subject"))
                if key in seen and seen[key] != path:
                    raise ScoreFileError(f"{r['row'].rsplit(':', 1)[0]}: row {r['row'].rsplit(':', 1)[1]}, column "
                                         f"'id': {r['id']!r} is also in {seen[key]} (duplicate id across files)")
                seen[key] = path


@register_dataset("scores")
def load_scores(files, format: str = "auto", bob_kind: str = "auto", species_map: str | None = None,
                attack_species: str = "unknown", default_split: str = "test",
                vendor: dict | None = None) -> pd.DataFrame:
    """The manifest of imported score files (module docstring): one row per scored sample (``path`` = ``file:row``,
    ``imported_pad_score``, ``has_pad``); the comparisons, the files' sha256 and the vendor are in
    ``manifest.attrs["score_import"]`` (:func:`imported`). ``files``: one path or a list."""
    paths = [Path(str(f)).expanduser() for f in ([files] if isinstance(files, (str, Path)) else list(files))]
    if not paths:
        raise ScoreFileError("dataset.files names no score file")
    bob = {"kind": bob_kind, "species": read_species_map(species_map), "attack_species": attack_species,
           "default_split": default_split}
    per_file = [read_score_file(p, format, **bob) for p in paths]
    _duplicates_across(paths, per_file)
    pads = [r for p, _ in per_file for r in p]
    trials = [r for _, t in per_file for r in t]
    check_status(pads, trials)
    if not pads and not trials:
        raise ScoreFileError(f"{paths[0]}: no score rows")
    manifest = validate_manifest(_manifest(pads, trials), source=", ".join(map(str, paths)))
    manifest.attrs[ATTR] = {
        "trials": {c: [t[c if c not in ("probe_id", "probe_subject", "match_score") else
                         {"probe_id": "id", "probe_subject": "subject", "match_score": "score"}[c]] for t in trials]
                   for c in TRIAL_COLUMNS},
        "files": [{"file": str(p.resolve()), "sha256": sha256_file(p), "pad_rows": len(a), "comparison_rows": len(b)}
                  for p, (a, b) in zip(paths, per_file)],
        "vendor": dict(vendor or {})}
    return manifest


def imported(manifest: pd.DataFrame) -> dict | None:
    """The imported comparisons (``trials``: a DataFrame of :data:`TRIAL_COLUMNS`), ``files`` and ``vendor`` of a
    ``scores`` manifest; None for any other manifest."""
    block = manifest.attrs.get(ATTR)
    if block is None:
        return None
    return {**block, "trials": pd.DataFrame(block["trials"], columns=list(TRIAL_COLUMNS))}
