"""Bad input, unit by unit: every rejected sample carries a documented code and a message naming the file or row;
decoding has limits (decompression bombs, a pixel cap) and converts every mode correctly; per-row problems set a
row aside instead of refusing the dataset; a manifest broken as a whole stops in one line naming the file, the line
and the column. The corpus run (every kind through ``python -m harness``) is ``test_bad_corpus.py``.

Regression tests for issue findings 2 and 4 are marked ``# finding 2`` / ``# finding 4``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.data.common import PROBLEM_KINDS, DatasetProblemsError, ManifestBuilder, problems_of
from harness.data.registry import load_dataset
from harness.data.sample import ManifestError
from harness.data.video import decode_frame, probe_video
from harness.faces.decode import (DEFAULT_MAX_PIXELS, REJECT_CODES, DecodeError, decode_image, decode_sample,
                                  read_bytes)
from tests.data.bad_corpus import empty_video, huge_bilevel_png

REPO = Path(__file__).resolve().parents[2]


def _enc(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _code(fn, *a, **kw) -> tuple[str, str]:
    with pytest.raises(DecodeError) as e:
        fn(*a, **kw)
    assert "\n" not in str(e.value)
    return e.value.code, str(e.value)


@pytest.fixture(scope="module")
def face() -> Image.Image:
    """A smooth RGB test picture (gradients + a disc): exact 8-bit values to compare conversions against."""
    y, x = np.mgrid[0:96, 0:128]
    r = (x * 2).astype(np.uint8)
    g = (y * 2 + 20).astype(np.uint8)
    b = np.where((x - 64) ** 2 + (y - 48) ** 2 < 30 ** 2, 230, 40).astype(np.uint8)
    return Image.fromarray(np.stack([r, g, b], axis=2))


# ----------------------------------------------------------------------------------------------- the code list

def _table_codes(readme: str, after: str) -> list[str]:
    lines = readme[readme.index(after):].splitlines()[1:]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| `"))
    rows = []
    for ln in lines[start:]:
        if not ln.startswith("| `"):
            break
        rows.append(ln.split("`")[1])
    return rows


def test_every_code_and_problem_kind_is_documented():
    readme = (REPO / "datasets/README.md").read_text()
    assert _table_codes(readme, "The codes (`harness.faces.decode.REJECT_CODES`") == list(REJECT_CODES)
    assert _table_codes(readme, "Problem kinds (`harness.data.common.PROBLEM_KINDS`)") == list(PROBLEM_KINDS)
    assert DEFAULT_MAX_PIXELS >= 8160 * 6144  # a 50 MP phone photo passes


# ----------------------------------------------------------------------------------------------- decoding

def test_16bit_grey_png_is_scaled_not_clipped(face, shared):  # finding 4
    grey = np.asarray(face.convert("L"))
    data = _enc(Image.fromarray(grey.astype(np.uint16) * 257), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    out = decode_image(data, "grey16.png")
    assert out.dtype == np.uint8 and out.shape == (96, 128, 3)
    np.testing.assert_array_equal(out[:, :, 0], grey)
    np.testing.assert_array_equal(out[:, :, 1], grey)
    # the finding's case: a real face crop saved as 16 bit was 96.7 % white and failed to acquire
    crop = np.asarray(Image.open(shared / "datasets/faceapi_bbt/images/amy/amy1.png").convert("L"))
    got = decode_image(_enc(Image.fromarray(crop.astype(np.uint16) * 257), "PNG"), "amy1_16.png")
    assert (got == 255).mean() < 0.05 and np.abs(got[:, :, 0].astype(int) - crop).max() == 0


def test_modes_convert_correctly_to_rgb8(face):
    import cv2

    ref = np.asarray(face)
    ok, rgb16 = cv2.imencode(".png", (ref.astype(np.uint16) * 257)[:, :, ::-1])
    np.testing.assert_array_equal(decode_image(rgb16.tobytes(), "rgb16.png"), ref)
    cmyk = decode_image(_enc(face.convert("CMYK"), "TIFF"), "cmyk.tif")
    assert np.abs(cmyk.astype(int) - ref).max() <= 1
    cmyk_jpeg = decode_image(_enc(face.convert("CMYK"), "JPEG", quality=95), "cmyk.jpg")
    assert np.abs(cmyk_jpeg.astype(int) - ref).mean() < 4  # JPEG loss only: no inverted or swapped channels
    # alpha over white: a fully transparent border is white, the opaque middle is the picture
    rgba = face.convert("RGBA")
    alpha = np.zeros((96, 128), np.uint8)
    alpha[20:-20, 20:-20] = 255
    rgba.putalpha(Image.fromarray(alpha))
    for mode in ("RGBA", "LA"):
        out = decode_image(_enc(rgba.convert(mode), "PNG"), f"{mode}.png")
        assert (out[:20] == 255).all() and (out[:, :20] == 255).all()
        want = ref[20:-20, 20:-20] if mode == "RGBA" else np.asarray(face.convert("L"))[20:-20, 20:-20, None]
        assert np.abs(out[20:-20, 20:-20].astype(int) - want).max() <= 1
    pal = face.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    idx = np.asarray(pal)
    out = decode_image(_enc(pal, "PNG", transparency=int(idx[0, 0])), "palette.png")
    assert (out[0, 0] == 255).all() and (out[idx == idx[0, 0]] == 255).all()
    np.testing.assert_array_equal(decode_image(_enc(pal, "PNG"), "p.png"), np.asarray(pal.convert("RGB")))
    grey = np.asarray(face.convert("L"))
    f = decode_image(_enc(Image.fromarray(grey.astype(np.float32) / 255, mode="F"), "TIFF"), "float.tif")
    assert np.abs(f[:, :, 0].astype(int) - grey).max() <= 1
    i32 = decode_image(_enc(Image.fromarray(grey.astype(np.int32) * 257, mode="I"), "TIFF"), "int32.tif")
    np.testing.assert_array_equal(i32[:, :, 2], grey)
    one = decode_image(_enc(face.convert("1"), "PNG"), "bilevel.png")
    assert set(np.unique(one)) <= {0, 255}


def test_exif_orientation_is_applied(face):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to show
    out = decode_image(_enc(face, "JPEG", quality=95, exif=exif), "rotated.jpg")
    assert out.shape == (128, 96, 3)


def test_broken_files_have_codes_naming_the_file(tmp_path, face):
    jpg, png = _enc(face, "JPEG", quality=90), _enc(face, "PNG")
    cases = {
        "empty_file": b"",
        "not_an_image": b"hello, I am a text file\n",
        "truncated": jpg[: len(jpg) // 2],
        "corrupt": png[:100] + bytes([png[100] ^ 0xFF]) + png[101:],
        "too_small": _enc(face.resize((5, 40)), "PNG"),
    }
    for code, data in cases.items():
        got, msg = _code(decode_image, data, f"/data/x/{code}.jpg")
        assert got == code and f"/data/x/{code}.jpg" in msg, (code, msg)
    assert _code(decode_image, png[: len(png) // 2], "t.png")[0] == "truncated"
    mp4 = b"\x00\x00\x00\x20ftypisom" + b"\x00" * 200
    code, msg = _code(decode_image, mp4, "clip.jpg")  # a video named like an image: says so
    assert code == "not_an_image" and "MP4/QuickTime video" in msg and "clip.jpg" in msg
    # the file system: missing, a directory, a FIFO (refused without being opened: no hang)
    (tmp_path / "dir.jpg").mkdir()
    os.mkfifo(tmp_path / "pipe.jpg")
    for name, want in (("absent.jpg", "missing"), ("dir.jpg", "is_directory"), ("pipe.jpg", "special_file")):
        got, msg = _code(read_bytes, tmp_path / name)
        assert got == want and name in msg
    assert "missing file: " in _code(read_bytes, tmp_path / "absent.jpg")[1]  # the message the engines used before


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak RSS from /proc (Linux)")
def test_decompression_bomb_and_pixel_cap_refused_from_the_header(tmp_path):  # finding 2
    """A 400 MP PNG is a decompression bomb, four 144 MP PNGs (18 KB each) are over the cap: all refused from the
    header, in a fresh process whose peak memory stays that of an idle interpreter (it was 4.85 GB for one)."""
    huge_bilevel_png(tmp_path / "bomb.png", 20000, 20000)
    for j in range(4):
        huge_bilevel_png(tmp_path / f"huge{j}.png", 12000, 12000)
    assert (tmp_path / "huge0.png").stat().st_size < 20_000
    driver = r"""
import json, sys
from pathlib import Path
from harness.faces.decode import DecodeError, decode_sample
out = {}
for p in sorted(Path(sys.argv[1]).glob("*.png")):
    try:
        decode_sample(p.read_bytes(), str(p))
        out[p.name] = "decoded"
    except DecodeError as e:
        out[p.name] = [e.code, str(e)]
# peak RSS of this process since exec (ru_maxrss would include the RSS of the pytest process it was forked from)
hwm = next(ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
out["peak_mb"] = int(hwm.split()[1]) / 1024
print(json.dumps(out))
"""
    r = subprocess.run([sys.executable, "-c", driver, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["bomb.png"][0] == "decompression_bomb" and "400000000 pixels" in got["bomb.png"][1]
    for j in range(4):
        code, msg = got[f"huge{j}.png"]
        assert code == "pixels_over_cap" and "12000x12000" in msg and "runtime.max_pixels" in msg
    assert got["peak_mb"] < 200, got["peak_mb"]  # an idle interpreter with numpy + Pillow: ~40 MB


def test_pixel_cap_is_configurable_and_a_jpeg_over_it_is_decoded_reduced(face):
    big = face.resize((2000, 1500))
    jpg, png = _enc(big, "JPEG", quality=90), _enc(big, "PNG")
    assert decode_image(jpg, "big.jpg").shape == (1500, 2000, 3)  # under the default cap: full size
    notes: list[str] = []
    small = decode_image(jpg, "big.jpg", max_pixels=1_000_000, notes=notes)
    assert small.shape == (750, 1000, 3)  # libjpeg's DCT scaling at 1/2
    assert notes and notes[0].startswith("pixels_over_cap: 2000x1500") and "1/2 scale" in notes[0]
    assert decode_image(jpg, "big.jpg", max_pixels=100_000).shape == (188, 250, 3)  # 1/8
    code, msg = _code(decode_image, png, "big.png", max_pixels=1_000_000)
    assert code == "pixels_over_cap" and "big.png" in msg and "2000x1500" in msg
    assert decode_image(png, "big.png", max_pixels=0).shape == (1500, 2000, 3)  # 0: no cap
    code, _ = _code(decode_image, jpg, "big.jpg", max_pixels=40_000)  # even 1/8 is too big
    assert code == "pixels_over_cap"


def test_video_codes(tmp_path, media):
    (tmp_path / "zero.mp4").write_bytes(b"")
    empty_video(tmp_path / "no_frames.mp4")
    (tmp_path / "junk.mp4").write_bytes(media[".mp4"][:48] + b"\x13" * 5000)
    (tmp_path / "dir.mp4").mkdir()
    for name, want in (("zero.mp4", "empty_video"), ("no_frames.mp4", "empty_video"), ("junk.mp4", "unreadable_video"),
                       ("dir.mp4", "is_directory"), ("absent.mp4", "missing")):
        got, msg = _code(probe_video, tmp_path / name)
        assert got == want and name in msg, (name, msg)
    assert _code(decode_sample, media[".mp4"], "v.mp4", 99)[0] == "frame_out_of_range"
    code, msg = _code(decode_frame, media[".mp4"], "v.mp4", 0, max_pixels=100)
    assert code == "pixels_over_cap" and "v.mp4" in msg
    assert decode_sample(media[".mp4"], "v.mp4", 3).dtype == np.uint8


# ----------------------------------------------------------------------------------------------- CSV manifests

def _tree(tmp_path: Path, media, names=("a.jpg", "b.jpg", "c.jpg")) -> Path:
    root = tmp_path / "set"
    (root / "img").mkdir(parents=True)
    for n in names:
        (root / "img" / n).write_bytes(media[".jpg"])
    return root


def test_duplicate_row_sets_one_row_aside_not_the_dataset(tmp_path, media):  # finding 4
    root = _tree(tmp_path, media)
    csv = root / "m.csv"
    csv.write_text("path,subject,label\nimg/a.jpg,s1,bona_fide\nimg/b.jpg,s2,bona_fide\nimg/a.jpg,s3,bona_fide\n"
                   "img/c.jpg,s2,bona_fide\n")
    with pytest.warns(UserWarning, match="duplicate_row"):
        df = load_dataset("csv", csv=str(csv), on_problem="warn")  # on_problem=warn is honoured
    assert list(df["sample_id"]) == ["img/a.jpg#-1", "img/b.jpg#-1", "img/a.jpg#-1@line4", "img/c.jpg#-1"]
    assert list(df["reject_code"]) == ["", "", "duplicate_row", ""]
    assert "m.csv line 4: repeats line 2 (img/a.jpg#-1) with a different subject" in df.at[2, "reject_reason"]
    with pytest.raises(DatasetProblemsError) as e:  # on_problem=error: the list, naming the line
        load_dataset("csv", csv=str(csv))
    assert [p.kind for p in e.value.problems] == ["duplicate_row"] and "m.csv line 4" in str(e.value)
    csv.write_text("path,subject,label,sample_id\nimg/a.jpg,s1,bona_fide,x\nimg/b.jpg,s2,bona_fide,x\n"
                   "img/c.jpg,s2,bona_fide,y\n")
    with pytest.warns(UserWarning, match="duplicate_row"):
        df = load_dataset("csv", csv=str(csv), on_problem="warn")  # the same given sample_id twice
    assert list(df["sample_id"]) == ["x", "x@line3", "y"] and list(df["reject_code"]) == ["", "duplicate_row", ""]


def test_rows_set_aside_with_their_code_and_warn_is_honoured(tmp_path, media):  # finding 4
    root = _tree(tmp_path, media)
    (root / "img" / "folder.jpg").mkdir()
    os.mkfifo(root / "img" / "pipe.jpg")
    csv = root / "m.csv"
    csv.write_text("path,subject,label\nimg/a.jpg,s1,bona_fide\nimg/folder.jpg,s1,bona_fide\nimg/absent.jpg,s1,"
                   "bona_fide\nimg/pipe.jpg,s2,bona_fide\n,s2,bona_fide\n../elsewhere.jpg,s2,bona_fide\n")
    with pytest.raises(DatasetProblemsError) as e:
        load_dataset("csv", csv=str(csv))
    kinds = [p.kind for p in e.value.problems]
    assert kinds == ["is_directory", "missing_file", "special_file", "missing_file", "outside_root"]
    assert "m.csv line 3: is a directory, not a file: 'img/folder.jpg'" in str(e.value)  # not "missing file"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = load_dataset("csv", csv=str(csv), on_problem="warn")
    assert list(df["reject_code"]) == ["", "is_directory", "missing", "special_file", "missing", "outside_root"]
    assert list(df["sample_id"])[4:] == ["m.csv:line6", "m.csv:line7"] and list(df["path"])[5] == ""
    assert all("\n" not in r for r in df["reject_reason"])
    csv.write_text("path,subject,label\nimg/absent.jpg,s1,bona_fide\n../x.jpg,s1,bona_fide\n")
    with pytest.raises(DatasetProblemsError, match="no usable samples"):  # nothing left: stops even with warn
        load_dataset("csv", csv=str(csv), on_problem="warn")


def test_video_rows_expand_to_frames_and_video_bytes_named_jpg_say_so(tmp_path, media):  # finding 4
    root = _tree(tmp_path, media)
    (root / "clip.mp4").write_bytes(media[".mp4"])
    (root / "clip_as.jpg").write_bytes(media[".mp4"])
    (root / "broken.mp4").write_bytes(b"\x00" * 500)
    csv = root / "m.csv"
    csv.write_text("path,subject,label\nimg/a.jpg,s1,bona_fide\nclip.mp4,s1,bona_fide\nbroken.mp4,s2,bona_fide\n"
                   "clip_as.jpg,s2,bona_fide\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = load_dataset("csv", csv=str(csv), on_problem="warn", frames="every:5")
    clip = df[df["video"] == "clip.mp4"]
    assert list(clip["frame"]) == [0, 5] and list(clip["sample_id"]) == ["clip.mp4#0", "clip.mp4#5"]
    assert (clip["video_frames"] == 10).all() and (clip["reject_code"] == "").all()
    broken = df.set_index("sample_id").loc["broken.mp4#0"]
    assert broken["reject_code"] == "unreadable_video" and "m.csv line 4" in broken["reject_reason"]
    assert df.set_index("sample_id").at["clip_as.jpg#-1", "reject_code"] == ""  # decoded (and refused) later:
    code, msg = _code(decode_image, media[".mp4"], "clip_as.jpg")
    assert code == "not_an_image" and "video" in msg  # not "unreadable image"


def test_sibling_folder_sharing_the_prefix(tmp_path, media):  # finding 4
    root = _tree(tmp_path, media)
    sib = tmp_path / "set2"  # starts with the CSV folder's name
    sib.mkdir()
    (sib / "x.jpg").write_bytes(media[".jpg"])
    csv = root / "m.csv"
    csv.write_text("path,subject,label\nimg/a.jpg,s1,bona_fide\n../set2/x.jpg,s2,bona_fide\n")
    with pytest.raises(DatasetProblemsError) as e:  # outside the root, named, not a crash
        load_dataset("csv", csv=str(csv))
    assert [p.kind for p in e.value.problems] == ["outside_root"]
    df = load_dataset("csv", csv=str(csv), allow_outside_root=True)  # a valid manifest: loads
    assert list(df["sample_id"]) == ["img/a.jpg#-1", f"{sib / 'x.jpg'}#-1"] and problems_of(df) == []
    csv2 = tmp_path / "set2" / "m.csv"  # and from the sibling's side
    csv2.write_text("path,subject,label\nx.jpg,s1,bona_fide\n../set/img/a.jpg,s2,bona_fide\n")
    df = load_dataset("csv", csv=str(csv2), allow_outside_root=True)
    assert list(df["sample_id"]) == ["x.jpg#-1", f"{root / 'img/a.jpg'}#-1"]


BROKEN = {  # name -> (file bytes, what the one line must say)
    "missing_column": (b"path,label\na.jpg,bona_fide\n", ["line 1 (header)", "missing column 'subject'"]),
    "empty": (b"", ["empty file: no header row"]),
    "blank_lines_only": (b"\n\r\n  \n", ["empty file: no header row"]),
    "header_only": (b"path,subject,label\r\n", ["header only, no sample rows"]),
    "bad_label": (b"path,subject,label\na.jpg,s1,bona_fide\nb.jpg,s1,live\nc.jpg,s1,spoof\n",
                  ["line 3, column 'label'", "unknown label 'live'", "(1 more bad row(s))"]),
    "bad_species": (b"path,subject,label,attack_type\na.jpg,s1,attack,hologram\n",
                    ["line 2, column 'attack_type'", "unknown attack species 'hologram'"]),
    "label_species_disagree": (b"path,subject,label,attack_type\na.jpg,s1,attack,none\n",
                               ["line 2, column 'attack_type'", "label and species disagree"]),
    "empty_subject": (b"path,subject,label\na.jpg,,bona_fide\n", ["line 2, column 'subject'", "empty subject"]),
    "bad_frame": (b"path,subject,label,frame\na.jpg,s1,bona_fide,first\n", ["line 2, column 'frame'", "'first'"]),
    "too_many_cells": (b"path,subject,label\na.jpg,s1,bona_fide,extra\n", ["line 2", "4 cells", "3 columns"]),
    "not_utf8": (b"path,subject,label\nimg/caf\xe9.jpg,s1,bona_fide\n", ["line 2", "not UTF-8"]),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_manifest_stops_in_one_line(tmp_path, media, name):
    data, says = BROKEN[name]
    csv = _tree(tmp_path, media) / f"{name}.csv"
    csv.write_bytes(data)
    with pytest.raises(ManifestError) as e:
        load_dataset("csv", csv=str(csv))
    msg = str(e.value)
    assert "\n" not in msg and str(csv) in msg and all(s in msg for s in says), msg


def test_bom_and_crlf_are_read_correctly(tmp_path, media):
    root = _tree(tmp_path, media)
    csv = root / "m.csv"
    csv.write_bytes("\ufeffpath,subject,label,attack_type,session\r\nimg/a.jpg,s1,bona_fide,none,01\r\n"
                    "img/b.jpg,s2,attack,print_photo,02\r\n\r\n\"img/c.jpg\",s3,bona_fide,,03\r\n".encode("utf-8"))
    df = load_dataset("csv", csv=str(csv))
    assert list(df.columns[:5]) == ["path", "subject", "label", "attack_type", "session"]
    assert list(df["sample_id"]) == ["img/a.jpg#-1", "img/b.jpg#-1", "img/c.jpg#-1"]
    assert list(df["session"]) == ["01", "02", "03"] and list(df["species"]) == ["none", "print_photo", "none"]
    assert not any("\r" in str(v) or "\ufeff" in str(v) for v in df.to_numpy().ravel())


def test_builder_sets_rows_aside(tmp_path, media):
    root = tmp_path / "db"
    (root / "s1").mkdir(parents=True)
    (root / "s1" / "a.jpg").write_bytes(media[".jpg"])
    (root / "s1" / "d.jpg").mkdir()
    (root / "s1" / "z.mp4").write_bytes(b"")
    b = ManifestBuilder("test db", root)
    for name in ("a.jpg", "a.jpg", "d.jpg", "gone.jpg", "z.mp4"):
        b.add(root / "s1" / name, subject="s1", label="bona_fide", species="none", split="test")
    b.add(root / ".." / "elsewhere.jpg", subject="s1", label="bona_fide", species="none", split="test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = b.build("warn", subject_disjoint=False, expected_labels=("bona_fide",))
    assert list(df["sample_id"]) == ["s1/a.jpg", "s1/a.jpg@dup1", "s1/d.jpg", "s1/gone.jpg", "s1/z.mp4#0",
                                     "outside_root:1"]
    assert list(df["reject_code"]) == ["", "duplicate_row", "is_directory", "missing", "empty_video", "outside_root"]
    assert df.at[5, "path"] == ""
    assert sorted(p.kind for p in problems_of(df)) == ["duplicate_row", "is_directory", "missing_file", "outside_root",
                                                       "unreadable_video"]


# ----------------------------------------------------------------------------------------------- the engines

@pytest.mark.shared
def test_four_faces_are_counted_and_the_largest_is_used(shared):  # finding 4
    from harness.faces.detect import MTCNNDetector
    from harness.scoring.engine import finish_table
    from tests.data.bad_corpus import bordered

    group = Image.new("RGB", (700, 420), (90, 90, 90))
    group.paste(bordered(shared, "amy", 3).resize((300, 300)), (20, 60))
    for j, who in enumerate(("penny", "raj", "howard")):
        group.paste(bordered(shared, who, 2), (340 + (j % 2) * 180, 10 + (j // 2) * 205))
    d = MTCNNDetector(batch_size=1).detect([np.asarray(group)])[0]
    assert d is not None and d.n_faces == 4 and d.box[0] < 330  # amy's, the largest
    det = np.full((1, 16), np.nan)
    det[0] = d.to_array()
    t = finish_table(pd.DataFrame({"sample_id": ["group"]}), np.array(["scored"], dtype=object),
                     np.array([""], dtype=object), det, np.zeros(1), np.zeros((1, 2)), {})
    assert int(t.samples.at[0, "faces"]) == 4 and t.samples.at[0, "code"] == ""


class _ThreeFaces:
    """Simple-engine detector stub: one face per image, reported as the largest of three."""
    detector_id = "stub-three-faces"

    def detect(self, images):
        from harness.faces.detect import Detection

        pts = np.array([[18, 22], [32, 22], [25, 30], [19, 37], [31, 37]], float)
        return [Detection(box=np.array([10.0, 12.0, 40.0, 44.0]), prob=0.99, landmarks=pts, n_faces=3)
                for _ in images]


def test_engines_reject_set_aside_rows_unopened_with_codes_and_count_faces(tmp_path, monkeypatch):
    from harness.scoring import batched as batched_mod
    from harness.scoring import reference as engine_mod
    from harness.scoring.cache import ScoreCache
    from tests.scoring.test_backoff_stubs import StubEmbedder, StubPAD

    rng = np.random.default_rng(0)
    ok = tmp_path / "ok.jpg"
    Image.fromarray(rng.integers(0, 256, (60, 64, 3), dtype=np.uint8)).save(ok, quality=95)
    big = tmp_path / "big.jpg"
    Image.fromarray(rng.integers(0, 256, (400, 320, 3), dtype=np.uint8)).save(big, quality=90)
    (tmp_path / "text.jpg").write_text("not an image")
    os.mkfifo(tmp_path / "pipe.jpg")  # set aside by the manifest: opening it would block
    rows = [("ok", ok, "", ""), ("big", big, "", ""), ("text", tmp_path / "text.jpg", "", ""),
            ("absent", tmp_path / "absent.jpg", "", ""),
            ("pipe", tmp_path / "pipe.jpg", "special_file", "m.csv line 5: not a regular file"),
            ("outside", "", "outside_root", "m.csv line 6: the path resolves outside the dataset root; not read")]
    m = pd.DataFrame([dict(sample_id=s, path=str(p), frame=-1, reject_code=c, reject_reason=r) for s, p, c, r in rows])
    opened: list[str] = []
    for mod in (engine_mod, batched_mod):
        real = mod.read_bytes
        monkeypatch.setattr(mod, "read_bytes", lambda p, real=real: (opened.append(str(p)), real(p))[1])

    def fake_mtcnn(mtcnn, x, **_):  # batched engine: three boxes per image, the largest first after sorting
        box = np.array([[10, 12, 40, 44, 0.99], [0, 0, 5, 5, 0.9], [50, 50, 55, 55, 0.9]], dtype=np.float32)
        pts = np.array([[[18, 22], [32, 22], [25, 30], [19, 37], [31, 37]]] * 3, dtype=np.float32)
        return [box] * len(x), [pts] * len(x)

    monkeypatch.setattr(batched_mod, "mtcnn_detect", fake_mtcnn)
    from harness.faces.detect import MTCNNDetector

    out = {}
    done = threading.Event()

    def score():
        out["simple"] = engine_mod.score_manifest(m, _ThreeFaces(), StubEmbedder(), StubPAD(), ScoreCache(None),
                                                  progress=False, max_pixels=50_000)
        out["batched"] = batched_mod.score_manifest_batched(m, MTCNNDetector(batch_size=4), StubEmbedder(), StubPAD(),
                                                            ScoreCache(None), progress=False, max_pixels=50_000)
        done.set()

    t = threading.Thread(target=score, daemon=True)
    t.start()
    assert done.wait(120), "scoring blocked: a set-aside row (a FIFO) was opened"
    assert not any("pipe" in p for p in opened) and "" not in opened
    for name, table in out.items():
        s = table.samples.set_index("sample_id")
        assert list(s["status"]) == ["scored", "scored", "rejected", "rejected", "rejected", "rejected"], name
        assert list(s["code"]) == ["", "", "not_an_image", "missing", "special_file", "outside_root"], name
        assert s.at["outside", "reason"].startswith("m.csv line 6") and "text.jpg" in s.at["text", "reason"]
        assert list(s["faces"].astype("Int64").fillna(-1)) == [3, 3, -1, -1, -1, -1], name
        assert s.at["big", "decode_note"].startswith("pixels_over_cap: 320x400") and s.at["ok", "decode_note"] == ""
        assert table.counts() == {"scored": 2, "fta": 0, "rejected": 4, "total": 6}
    for c in ("status", "code", "reason", "faces", "decode_note"):
        assert list(out["simple"].samples[c].astype(str)) == list(out["batched"].samples[c].astype(str)), c
