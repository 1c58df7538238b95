"""Labeled Faces in the Wild (LFW; Huang et al., 2007): verification only (no attacks).

Layout: ``<root>/<images>/<Name>/<Name>_<NNNN>.jpg`` (``images``: ``lfw``, ``lfw-deepfunneled``,
``lfw_funneled``... or the root itself) and the pair lists. ``pairs.txt`` (View 2) starts with ``<folds>
<n>`` (10 300) and holds, per fold, ``n`` matched pairs ``Name i j`` then ``n`` mismatched pairs ``Name1 i
Name2 j``; ``pairsDevTrain.txt`` / ``pairsDevTest.txt`` (View 1) start with ``<n>`` and form one fold.

The manifest holds every image the pair list names (split = ``fold01`` .. ``fold10``, or ``view1`` for a View 1
list); the pairs are in ``manifest.attrs["pairs"]`` (see :func:`lfw_pairs`): columns ``fold``, ``pair``,
``a``, ``b`` (sample ids) and ``same`` (bool). The 10 folds are person-disjoint; a person in two folds is
reported as a subject leak.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.data.common import LayoutError, ManifestBuilder, read_text_lines, require_root
from harness.data.registry import register_dataset
from harness.data.sample import ManifestError

HOW_TO_OBTAIN = (
    "LFW: download it from the University of Massachusetts (http://vis-www.cs.umass.edu/lfw/; research use, images "
    "collected from the web) - the images (lfw.tgz or lfw-deepfunneled.tgz) and pairs.txt; expected layout: "
    "<root>/pairs.txt and <root>/lfw/<Name>/<Name>_0001.jpg. See datasets/README.md."
)

IMAGE_DIRS = ("lfw", "lfw-deepfunneled", "lfw_funneled", "lfw-funneled", "lfw-a", "images")


def _image_dir(root: Path, images: str | None) -> Path:
    if images:
        d = root / images
        if not d.is_dir():
            raise LayoutError(f"LFW: image folder {d} not found. {HOW_TO_OBTAIN}")
        return d
    for name in IMAGE_DIRS:
        if (root / name).is_dir():
            return root / name
    return root


def parse_pairs(pairs_file: Path) -> pd.DataFrame:
    """The pair list as rows (fold, pair, name_a, num_a, name_b, num_b, same); errors name the file and line."""
    lines = read_text_lines(pairs_file)
    if not lines:
        raise ManifestError(f"LFW pair list {pairs_file} is empty")
    head = lines[0].split()
    try:
        if len(head) == 2:
            n_folds, n = int(head[0]), int(head[1])
            view = "fold"
        elif len(head) == 1:
            n_folds, n = 1, int(head[0])
            view = "view1"
        else:
            raise ValueError
    except ValueError:
        raise ManifestError(f"{pairs_file}: line 1 {lines[0]!r} is not '<folds> <pairs per class>' or '<pairs>'") from None
    body = lines[1:]
    if len(body) != 2 * n * n_folds:
        raise ManifestError(f"{pairs_file}: expected {2 * n * n_folds} pair lines ({n_folds} fold(s) x {n} matched + "
                            f"{n} mismatched), found {len(body)}")
    rows = []
    for k in range(n_folds):
        fold = f"fold{k + 1:02d}" if view == "fold" else "view1"
        for j in range(2 * n):
            ln_no = 2 + k * 2 * n + j
            f = body[k * 2 * n + j].split()
            try:
                if j < n:
                    if len(f) != 3:
                        raise ValueError("a matched pair is 'Name i j'")
                    rows.append((fold, j, f[0], int(f[1]), f[0], int(f[2]), True))
                else:
                    if len(f) != 4:
                        raise ValueError("a mismatched pair is 'Name1 i Name2 j'")
                    rows.append((fold, j, f[0], int(f[1]), f[2], int(f[3]), False))
            except ValueError as e:
                raise ManifestError(f"{pairs_file}: line {ln_no} {body[k * 2 * n + j]!r}: {e}") from None
    return pd.DataFrame(rows, columns=["fold", "pair", "name_a", "num_a", "name_b", "num_b", "same"])


@register_dataset("lfw")
def load_lfw(root: str, pairs: str = "pairs.txt", images: str | None = None, on_problem: str = "error",
             allow_outside_root: bool = False, **_) -> pd.DataFrame:
    """LFW images named by a pair list, with the pairs in ``attrs["pairs"]`` (see module docstring)."""
    root_p = require_root(root, "LFW", HOW_TO_OBTAIN)
    pf = root_p / pairs
    if not pf.is_file():
        raise LayoutError(f"LFW: pair list {pf} not found. {HOW_TO_OBTAIN}")
    img_dir = _image_dir(root_p, images)
    table = parse_pairs(pf)
    b = ManifestBuilder("LFW", root_p, HOW_TO_OBTAIN, allow_outside_root=allow_outside_root)
    seen: dict[tuple[str, int], tuple[str, str]] = {}  # (name, number) -> (sample id, fold)
    ids_a, ids_b = [], []
    for r in table.itertuples(index=False):
        for name, num, out in ((r.name_a, r.num_a, ids_a), (r.name_b, r.num_b, ids_b)):
            key = (name, num)
            path = img_dir / name / f"{name}_{num:04d}.jpg"
            if key not in seen:
                added = b.add(path, subject=f"lfw_{name}", label="bona_fide", species="none", split=r.fold,
                              person=name, image_no=num)
                # an image outside the root is a rejected row (outside_root): its pairs name a row never scored
                seen[key] = (b.rows[-1]["sample_id"] if added else b.rel(path), r.fold)
            elif seen[key][1] != r.fold:
                b.problem("subject_leak", f"image {path} is paired in {seen[key][1]} and {r.fold} of {pf}", path)
            out.append(seen[key][0])
    df = b.build(on_problem, subject_disjoint=True, expected_labels=("bona_fide",))
    # a dict of lists (not a DataFrame) so that pandas can compare and copy the attrs
    df.attrs["pairs"] = {"fold": list(table["fold"]), "pair": [int(x) for x in table["pair"]], "a": ids_a,
                         "b": ids_b, "same": [bool(x) for x in table["same"]]}
    return df


def lfw_pairs(manifest: pd.DataFrame) -> pd.DataFrame:
    """The pair table of an LFW manifest (``fold, pair, a, b, same``; ``a``/``b`` are sample ids)."""
    if "pairs" not in manifest.attrs:
        raise KeyError("this manifest carries no LFW pair table (load it with dataset=lfw)")
    return pd.DataFrame(manifest.attrs["pairs"])
