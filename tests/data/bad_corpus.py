"""A corpus of bad (and awkward but good) input, generated in a temporary folder from the shared faceapi_bbt crops,
the silentface EXIF-rotated photo and an MSU-MFSD video, plus generated files: one CSV manifest with one or more rows
per *kind*, and the outcome each kind must end in (``scored``, ``fta`` or ``rejected:<code>``).

Nothing here is committed data: :func:`build_corpus` writes it all (about 5 MB, a few seconds). Huge images are
cheap: a 1-bit PNG of 12000 x 12000 (144 MP) is 18 KB, streamed through zlib row by row.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

SUBJECTS = ("amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart")
BORDER = 25  # faceapi_bbt crops are tight: MTCNN finds all 40 with a 25 px border (README), no detector padding


@dataclass
class Corpus:
    root: Path
    csv: Path
    expected: dict[str, str]  # kind -> expected outcome ("scored" | "fta" | "rejected:<code>"); column ``kind``
    rows: dict[str, list[str]] = field(default_factory=dict)  # kind -> the CSV lines' paths (as written)
    lines: dict[str, list[int]] = field(default_factory=dict)  # kind -> CSV line numbers
    outside: list[str] = field(default_factory=list)  # path strings that must appear in no run output


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_bilevel_png(path: Path, width: int, height: int) -> Path:
    """A valid all-black 1-bit PNG of ``width`` x ``height``, written without ever holding its pixels."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    parts = []
    for _ in range(height):
        parts.append(comp.compress(row))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts))
                     + png_chunk(b"IEND", b""))
    return path


def bordered(shared: Path, who: str, i: int) -> Image.Image:
    src = Image.open(shared / "datasets/faceapi_bbt/images" / who / f"{who}{i}.png").convert("RGB")
    out = Image.new("RGB", (src.width + 2 * BORDER, src.height + 2 * BORDER), (0, 0, 0))
    out.paste(src, (BORDER, BORDER))
    return out


def _save(im: Image.Image, path: Path, fmt: str, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt, **kw)
    return path


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def empty_video(path: Path) -> Path:
    """A well-formed MP4 container with a video stream and no frames."""
    import av

    with av.open(str(path), mode="w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()  # the header and trailer, no packet
    assert path.stat().st_size > 0
    return path


def build_corpus(shared: Path, root: Path, outside_dir: Path) -> Corpus:
    """Write the corpus under ``root`` (``manifest.csv`` + files) and a few files in ``outside_dir``."""
    root.mkdir(parents=True, exist_ok=True)
    outside_dir.mkdir(parents=True, exist_ok=True)
    k = root / "kinds"
    k.mkdir()
    rows: list[tuple[str, str, str, str]] = []  # (kind, path as written, subject, frame)
    expected: dict[str, str] = {}

    def add(kind: str, path: str, who: str, outcome: str, frame: str = "") -> None:
        rows.append((kind, path, f"faceapi_{who}", frame))
        expected[kind] = outcome

    # the good crops (bordered), 8 people x 5
    for who in SUBJECTS:
        for i in range(1, 6):
            p = _save(bordered(shared, who, i), root / "images" / who / f"{who}{i}.png", "PNG")
            add("good_crop", p.relative_to(root).as_posix(), who, "scored")
    amy = bordered(shared, "amy", 3)
    raj = bordered(shared, "raj", 3)
    png = _encode(amy, "PNG")
    jpg = _encode(amy, "JPEG", quality=92)

    # broken files
    add("corrupt_png", "kinds/corrupt.png", "amy", "rejected:corrupt")
    (k / "corrupt.png").write_bytes(png[:200] + bytes([png[200] ^ 0xFF]) + png[201:])
    add("corrupt_jpeg_scan", "kinds/corrupt_scan.jpg", "amy", "scored")  # libjpeg decodes through zeroed scan data
    (k / "corrupt_scan.jpg").write_bytes(jpg[:len(jpg) - 1200] + b"\x00" * 600 + jpg[len(jpg) - 600:])
    add("truncated_jpeg", "kinds/truncated.jpg", "amy", "rejected:truncated")
    (k / "truncated.jpg").write_bytes(jpg[: len(jpg) * 6 // 10])
    add("truncated_png", "kinds/truncated.png", "amy", "rejected:truncated")
    (k / "truncated.png").write_bytes(png[: len(png) * 6 // 10])
    add("zero_byte", "kinds/zero.jpg", "amy", "rejected:empty_file")
    (k / "zero.jpg").write_bytes(b"")
    add("text_named_jpg", "kinds/notes.jpg", "amy", "rejected:not_an_image")
    (k / "notes.jpg").write_text("this is a text file, not a photo\n")
    add("html_named_png", "kinds/page.png", "amy", "rejected:not_an_image")
    (k / "page.png").write_text("<!doctype html><html><body>404 Not Found</body></html>\n")
    add("tiny", "kinds/tiny.png", "amy", "rejected:too_small")
    _save(amy.resize((4, 4)), k / "tiny.png", "PNG")

    # modes and formats that must decode correctly
    add("cmyk_jpeg", "kinds/cmyk.jpg", "amy", "scored")
    _save(amy.convert("CMYK"), k / "cmyk.jpg", "JPEG", quality=95)
    add("grayscale_jpeg", "kinds/grey.jpg", "amy", "scored")
    _save(amy.convert("L"), k / "grey.jpg", "JPEG", quality=95)
    rgba = amy.convert("RGBA")
    a = np.full((amy.height, amy.width), 255, np.uint8)
    a[:BORDER], a[-BORDER:], a[:, :BORDER], a[:, -BORDER:] = 0, 0, 0, 0
    rgba.putalpha(Image.fromarray(a))
    add("rgba_png", "kinds/rgba.png", "amy", "scored")
    _save(rgba, k / "rgba.png", "PNG")
    add("la_png", "kinds/la.png", "amy", "scored")
    _save(rgba.convert("LA"), k / "la.png", "PNG")
    add("palette_png_transparency", "kinds/palette.png", "amy", "scored")
    _save(amy.convert("P", palette=Image.Palette.ADAPTIVE, colors=255), k / "palette.png", "PNG", transparency=0)
    grey16 = (np.asarray(amy.convert("L")).astype(np.uint16) * 257)
    add("png16_grey", "kinds/grey16.png", "amy", "scored")
    _save(Image.fromarray(grey16), k / "grey16.png", "PNG")
    import cv2

    add("png16_rgb", "kinds/rgb16.png", "amy", "scored")
    cv2.imwrite(str(k / "rgb16.png"), (np.asarray(amy).astype(np.uint16) * 257)[:, :, ::-1])
    add("tiff_float32", "kinds/float.tif", "amy", "scored")
    _save(Image.fromarray(np.asarray(amy.convert("L")).astype(np.float32) / 255.0, mode="F"), k / "float.tif", "TIFF")
    add("png_named_jpg", "kinds/png_inside.jpg", "amy", "scored")
    (k / "png_inside.jpg").write_bytes(png)
    add("webp", "kinds/face.webp", "amy", "scored")
    _save(amy, k / "face.webp", "WEBP", quality=95)
    add("bmp", "kinds/face.bmp", "amy", "scored")
    _save(amy, k / "face.bmp", "BMP")
    add("gif", "kinds/face.gif", "amy", "scored")
    _save(amy, k / "face.gif", "GIF")
    add("exif_rotated", "kinds/exif_rotated.jpg", "amy", "scored")
    shutil.copyfile(shared / "datasets/silentface_samples/images/image_T1.jpg", k / "exif_rotated.jpg")
    name = "Zoë_Łódź_李小龍_😀.png"
    add("unicode_name", f"kinds/{name}", "amy", "scored")
    (k / name).write_bytes(png)
    long_name = "long_" + "x" * 230 + ".png"
    add("very_long_name", f"kinds/{long_name}", "amy", "scored")
    (k / long_name).write_bytes(png)

    # content
    add("no_face", "kinds/noise.png", "amy", "fta")
    _save(Image.fromarray(np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)), k / "noise.png",
          "PNG")
    group = Image.new("RGB", (700, 420), (90, 90, 90))  # four people; the largest (amy, 300 px) is the one used
    group.paste(amy.resize((300, 300)), (20, 60))
    for j, who in enumerate(("penny", "raj", "howard")):
        group.paste(bordered(shared, who, 2), (340 + (j % 2) * 180, 10 + (j // 2) * 205))
    add("several_faces", "kinds/group.jpg", "amy", "scored")
    _save(group, k / "group.jpg", "JPEG", quality=95)

    # size limits
    add("decompression_bomb", "kinds/bomb.png", "amy", "rejected:decompression_bomb")
    huge_bilevel_png(k / "bomb.png", 20000, 20000)  # 400 MP, 50 KB
    for j in range(4):  # four 144 MP images (the finding: one peaked at 4.85 GB, four passed 10 GB)
        add(f"huge_png_over_cap_{j}", f"kinds/huge{j}.png", "amy", "rejected:pixels_over_cap")
        huge_bilevel_png(k / f"huge{j}.png", 12000, 12000)
    big = Image.new("RGB", (8200, 8200), (120, 120, 120))  # 67 MP JPEG: over the 64 MP cap, decoded at 1/2
    big.paste(raj.resize((1200, 1200)), (3500, 3500))
    add("huge_jpeg_over_cap", "kinds/huge.jpg", "raj", "scored")
    _save(big, k / "huge.jpg", "JPEG", quality=80)
    del big

    # the file system
    add("directory_named_jpg", "kinds/folder.jpg", "amy", "rejected:is_directory")
    (k / "folder.jpg").mkdir()
    add("missing", "kinds/absent.jpg", "amy", "rejected:missing")
    add("empty_path", "", "amy", "rejected:missing")
    add("duplicate_row", "images/amy/amy1.png", "amy", "rejected:duplicate_row")
    os.mkfifo(k / "pipe.jpg")
    add("fifo_named_jpg", "kinds/pipe.jpg", "amy", "rejected:special_file")
    _save(amy, outside_dir / "outside.jpg", "JPEG")
    add("outside_root_relative", "../outside/outside.jpg", "amy", "rejected:outside_root")
    (k / "escape.jpg").symlink_to(outside_dir / "outside.jpg")
    add("outside_root_symlink", "kinds/escape.jpg", "amy", "rejected:outside_root")
    add("outside_root_absolute", "/etc/hostname", "amy", "rejected:outside_root")

    # videos
    msu = shared / "datasets/msu_mfsd_sample/real_client022_android_SD_scene01.mp4"
    shutil.copyfile(msu, k / "good.mp4")
    add("video_good", "kinds/good.mp4", "raj", "scored")  # 2 sampled frames (dataset.frames=uniform:2)
    add("video_frame_out_of_range", "kinds/good.mp4", "raj", "rejected:frame_out_of_range", frame="99999")
    (k / "empty.mp4").write_bytes(b"")
    add("video_zero_bytes", "kinds/empty.mp4", "raj", "rejected:empty_video")
    empty_video(k / "no_frames.mp4")
    add("video_no_frames", "kinds/no_frames.mp4", "raj", "rejected:empty_video")
    data = msu.read_bytes()
    (k / "corrupt.mp4").write_bytes(data[:64] + np.random.default_rng(1).integers(0, 256, 200_000, np.uint8).tobytes())
    add("video_corrupt", "kinds/corrupt.mp4", "raj", "rejected:unreadable_video")
    (k / "video.jpg").write_bytes(data[:300_000])
    add("video_named_jpg", "kinds/video.jpg", "raj", "rejected:not_an_image")

    lines = ["path,subject,label,attack_type,frame,kind"]
    by_kind: dict[str, list[str]] = {}
    line_no: dict[str, list[int]] = {}
    for kind, path, subj, frame in rows:
        cell = '"' + path.replace('"', '""') + '"' if ("," in path or '"' in path) else path
        lines.append(f"{cell},{subj},bona_fide,none,{frame},{kind}")
        by_kind.setdefault(kind, []).append(path)
        line_no.setdefault(kind, []).append(len(lines))
    csv = root / "manifest.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Corpus(root=root, csv=csv, expected=expected, rows=by_kind, lines=line_no,
                  outside=[str(outside_dir), "/etc/hostname", "../outside"])
