"""The html pages opened in a real headless browser (Chromium from Debian): the screenshot must show a page.

Chromium is not installed by the test. `make browser` (or `apt-get install -y chromium`) installs it;
without /usr/bin/chromium these tests are skipped with the reason.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from dsl import cli

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: run `make browser` "
                                    "(apt-get install -y chromium) to test the html pages in a real browser")


# ---------------------------------------------------------------- a tiny PNG decoder (8-bit RGB/RGBA, no interlace)


def read_png(data: bytes) -> tuple[int, int, list[bytes], int]:
    """(width, height, rows of raw pixel bytes, bytes per pixel)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


def pixel(rows, bpp, x, y) -> tuple[int, int, int]:
    return tuple(rows[y][x * bpp:x * bpp + 3])


def decode(data: bytes) -> tuple[int, int, list[bytes], int]:
    """Pillow (a dev dependency) when present: fast; else the tiny decoder above (about 1.5 s a screenshot)."""
    try:
        from PIL import Image
    except ImportError:
        return read_png(data)
    import io

    img = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = img.size
    raw = img.tobytes()
    return width, height, [raw[y * width * 3:(y + 1) * width * 3] for y in range(height)], 3


def screenshot(page: Path, tmp_path: Path, size: str = "1280,900") -> Path:
    png = tmp_path / (page.stem + ".png")
    profile = tmp_path / f"profile-{page.stem}"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={size}", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    shutil.rmtree(profile, ignore_errors=True)
    assert png.exists(), f"chromium wrote no screenshot (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
    return png


def check_rendered(png: Path) -> tuple[int, int, list[bytes], int]:
    data = png.read_bytes()
    assert len(data) > 20_000, f"screenshot is only {len(data)} bytes"
    width, height, rows, bpp = decode(data)
    assert (width, height) == (1280, 900)
    counts: dict[tuple, int] = {}
    for y in range(0, height, 3):
        for x in range(0, width, 3):
            p = pixel(rows, bpp, x, y)
            counts[p] = counts.get(p, 0) + 1
    total = sum(counts.values())
    assert len(counts) > 100, f"only {len(counts)} colours: the page did not render"
    assert max(counts.values()) / total < 0.9, "the screenshot is nearly one colour"
    # the page's dark header band (#14365f) is there: the inline stylesheet was applied
    r, g, b = pixel(rows, bpp, 5, 5)
    assert abs(r - 0x14) < 12 and abs(g - 0x36) < 12 and abs(b - 0x5F) < 12, (r, g, b)
    return width, height, rows, bpp


def _run(argv, capsys) -> int:
    code = cli.main(argv)
    capsys.readouterr()
    return code


@needs_chromium
def test_diff_html_renders_in_chromium(tmp_path, capsys):
    page = tmp_path / "diff.html"
    code = _run(["diff", "org-development@2020", "org-development@2021-proposed", "--format", "html", "--lang", "en",
                 "--rules", str(ROOT / "rules" / "org-development"), "--output", str(page)], capsys)
    assert code == 0
    text = page.read_text(encoding="utf-8")
    assert "0.08" in text and "0.09" in text and "net_turnover" in text
    width, height, rows, bpp = check_rendered(screenshot(page, tmp_path))
    # old (red, left) and new (green, right) side by side: both tints appear in the two halves
    left = {pixel(rows, bpp, x, y) for y in range(0, height, 2) for x in range(0, width // 2, 4)}
    right = {pixel(rows, bpp, x, y) for y in range(0, height, 2) for x in range(width // 2, width, 4)}
    assert (0xC0, 0x39, 0x2B) in left and (0x2E, 0x7D, 0x32) in right


@needs_chromium
def test_impact_html_with_chart_renders_in_chromium(tmp_path, capsys):
    page = tmp_path / "impact.html"
    code = _run(["impact", "org-development@2020", "org-development@2021-proposed", "--format", "html", "--lang", "en",
                 "--input", str(ROOT / "examples" / "org-development-subjects.jsonl"),
                 "--rules", str(ROOT / "rules" / "org-development"), "--output", str(page)], capsys)
    assert code == 0
    assert "<svg" in page.read_text(encoding="utf-8")
    width, height, rows, bpp = check_rendered(screenshot(page, tmp_path, "1280,900"))
    # the transition cells that moved up are tinted green (#e8f5e9)
    seen = {pixel(rows, bpp, x, y) for y in range(0, height, 2) for x in range(0, width, 2)}
    assert (0xE8, 0xF5, 0xE9) in seen


def test_png_decoder_on_a_tiny_image():
    # 2x1 RGB: red, green; filter 0
    raw = b"\x00" + bytes([255, 0, 0, 0, 255, 0])
    ihdr = struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    w, h, rows, bpp = read_png(png)
    assert (w, h, bpp) == (2, 1, 3)
    assert pixel(rows, bpp, 0, 0) == (255, 0, 0) and pixel(rows, bpp, 1, 0) == (0, 255, 0)
