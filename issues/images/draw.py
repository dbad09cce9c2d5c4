"""Draw the sample issue's pictures and the default theme's logo.

They are flat illustrations made for this repository (no photograph, no outside
material), drawn with Pillow from fixed seeds: running this again gives the same files.
They are committed as an editor would commit photos, large and unprepared, so that the
build has real work to do.

Run: .venv/bin/python issues/images/draw.py
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MONTH = HERE / "2021-05"
LOGO = ROOT / "templates" / "default" / "logo.png"

SKIN = ["#f1c7a1", "#d9a27a", "#b97e56", "#8d5a3b", "#6b4028", "#e8b48c"]
CLOTHES = ["#0b5cad", "#1f8a70", "#e07a2f", "#7c4dab", "#c23b52", "#2f6f9f", "#d1a21e"]
HAIR = ["#2b1d16", "#4a3426", "#1b1b1b", "#6d4c33", "#8a8a8a"]


def sky(size: tuple[int, int], top: str, bottom: str) -> Image.Image:
    """A vertical gradient."""
    w, h = size
    a, b = Image.new("RGB", (1, 2), top), Image.new("RGB", (1, 2), bottom)
    column = Image.new("RGB", (1, h))
    for y in range(h):
        t = y / max(1, h - 1)
        pa, pb = a.getpixel((0, 0)), b.getpixel((0, 0))
        assert isinstance(pa, tuple) and isinstance(pb, tuple)
        column.putpixel((0, y), tuple(round(pa[i] + (pb[i] - pa[i]) * t) for i in range(3)))
    return column.resize((w, h))


def person(
    d: ImageDraw.ImageDraw, x: float, y: float, scale: float, rng: random.Random, cap: str = ""
) -> None:
    """A head and shoulders, centred on x, the chin at y."""
    body, skin, hair = rng.choice(CLOTHES), rng.choice(SKIN), rng.choice(HAIR)
    r = 34 * scale
    d.rounded_rectangle(
        (x - 2.1 * r, y + 0.35 * r, x + 2.1 * r, y + 3.2 * r), radius=int(1.4 * r), fill=body
    )
    d.rectangle((x - 0.35 * r, y - 0.2 * r, x + 0.35 * r, y + 0.6 * r), fill=skin)
    d.ellipse((x - r, y - 2.1 * r, x + r, y), fill=skin)
    if cap:
        d.rectangle((x - 1.05 * r, y - 2.25 * r, x + 1.05 * r, y - 1.55 * r), fill=cap)
        d.polygon(
            [(x - 1.5 * r, y - 2.2 * r), (x, y - 2.7 * r), (x + 1.5 * r, y - 2.2 * r)], fill=cap
        )
    else:
        d.chord((x - r * 1.05, y - 2.2 * r, x + r * 1.05, y - 0.6 * r), 180, 360, fill=hair)


def video_call(path: Path) -> None:
    """A grid of people in a video meeting."""
    rng = random.Random(2021_05_24)
    w, h = 1600, 1000
    img = sky((w, h), "#1d2b3a", "#0f1822")
    d = ImageDraw.Draw(img)
    cols, rows, gap = 4, 3, 18
    tw, th = (w - gap * (cols + 1)) / cols, (h - 90 - gap * (rows + 1)) / rows
    for r in range(rows):
        for c in range(cols):
            x0, y0 = gap + c * (tw + gap), gap + r * (th + gap)
            tile = rng.choice(["#dfe8f1", "#e9e2d6", "#d8e6dc", "#e6dcea", "#f1e6d2"])
            d.rounded_rectangle((x0, y0, x0 + tw, y0 + th), radius=14, fill=tile)
            # a window or a shelf behind them
            d.rectangle(
                (x0 + tw * 0.62, y0 + th * 0.12, x0 + tw * 0.9, y0 + th * 0.45), fill="#ffffff"
            )
            d.line(
                (x0 + tw * 0.1, y0 + th * 0.3, x0 + tw * 0.4, y0 + th * 0.3),
                fill="#b9a98e",
                width=6,
            )
            person(d, x0 + tw / 2, y0 + th * 0.72, 1.25, rng)
            d.rounded_rectangle(
                (x0 + 12, y0 + th - 38, x0 + 12 + rng.randint(90, 150), y0 + th - 14),
                radius=6,
                fill="#00000088",
            )
    # the meeting's toolbar
    d.rounded_rectangle((w / 2 - 200, h - 72, w / 2 + 200, h - 16), radius=28, fill="#2a3a4c")
    for i, colour in enumerate(["#dfe8f1", "#dfe8f1", "#dfe8f1", "#d93b3b"]):
        cx = w / 2 - 135 + i * 90
        d.ellipse((cx - 20, h - 64, cx + 20, h - 24), fill=colour)
    img.save(path, "JPEG", quality=90)


def graduation(path: Path) -> None:
    """Rows of new members in caps before a flag and hills."""
    rng = random.Random(2021_04_19)
    w, h = 1200, 900
    img = sky((w, h), "#8fc3e8", "#e6f2fa")
    d = ImageDraw.Draw(img)
    d.ellipse((-300, 420, 700, 1100), fill="#5f9e5a")
    d.ellipse((450, 460, 1600, 1150), fill="#4c8a4a")
    d.rectangle((0, 700, w, h), fill="#c9b48f")
    # flagpole and flag
    d.rectangle((960, 140, 970, 620), fill="#6b6b6b")
    d.rectangle((970, 150, 1130, 250), fill="#ffffff")
    d.rectangle((970, 150, 1050, 200), fill="#d21034")
    d.rectangle((1050, 200, 1130, 250), fill="#005293")
    for row, (y, scale) in enumerate([(610, 0.8), (700, 0.95), (800, 1.1)]):
        count = 9 - row
        for i in range(count):
            x = (i + 0.5) * w / count + rng.uniform(-10, 10)
            person(d, x, y, scale, rng, cap="#1e3d2f")
    img = img.filter(ImageFilter.SMOOTH)
    img.save(path, "JPEG", quality=90)


def network_map(path: Path) -> None:
    """Two countries joined by lines of a network, and a magnifying glass over them."""
    rng = random.Random(2021_05_18)
    w, h = 1200, 900
    img = sky((w, h), "#0d3b5c", "#0a2236")
    d = ImageDraw.Draw(img)
    d.polygon(
        [(80, 420), (300, 330), (520, 380), (640, 460), (600, 560), (420, 600), (230, 560)],
        fill="#2f7d5b",
    )
    d.polygon(
        [(640, 460), (820, 420), (1000, 470), (1130, 560), (1080, 640), (880, 610), (700, 560)],
        fill="#3c9469",
    )
    d.line([(640, 460), (620, 520), (600, 560)], fill="#f4d35e", width=6)
    nodes = [(rng.randint(120, 1080), rng.randint(200, 760)) for _ in range(22)]
    for a in nodes:
        for b in rng.sample(nodes, 2):
            d.line([a, b], fill="#7fc8f8", width=2)
    for x, y in nodes:
        d.ellipse((x - 9, y - 9, x + 9, y + 9), fill="#ffffff", outline="#7fc8f8", width=3)
    d.ellipse((640, 150, 940, 450), outline="#f4d35e", width=22)
    d.line([(900, 420), (1050, 580)], fill="#f4d35e", width=34)
    img.save(path, "JPEG", quality=90)


def megaphone(path: Path) -> None:
    """A megaphone and speech bubbles: communicating in a crisis."""
    w, h = 1200, 900
    img = sky((w, h), "#fff3e0", "#ffe0b2")
    d = ImageDraw.Draw(img)
    d.polygon([(260, 400), (640, 220), (640, 700), (260, 540)], fill="#e07a2f")
    d.rectangle((170, 390, 280, 550), fill="#b85c1c")
    d.rounded_rectangle((300, 540, 360, 720), radius=20, fill="#8a4514")
    d.ellipse((600, 220, 700, 700), fill="#f29a4a")
    for i, (x, y, bw) in enumerate([(760, 180, 330), (800, 420, 280), (740, 640, 250)]):
        d.rounded_rectangle(
            (x, y, x + bw, y + 140), radius=40, fill="#ffffff", outline="#0b5cad", width=8
        )
        d.polygon([(x + 30, y + 130), (x - 20, y + 190), (x + 90, y + 135)], fill="#ffffff")
        for j in range(3 - i % 2):
            d.line(
                (x + 40, y + 45 + j * 30, x + bw - 50 - j * 40, y + 45 + j * 30),
                fill="#0b5cad",
                width=10,
            )
    img.save(path, "JPEG", quality=90)


def online_course(path: Path) -> None:
    """A laptop with a lesson on screen, a notebook and a plant."""
    w, h = 1200, 900
    img = sky((w, h), "#e3f0f7", "#c9e1ee")
    d = ImageDraw.Draw(img)
    d.rectangle((0, 650, w, h), fill="#a97c50")
    d.rounded_rectangle((250, 190, 950, 620), radius=24, fill="#2b2f36")
    d.rectangle((280, 220, 920, 590), fill="#ffffff")
    d.rectangle((280, 220, 920, 270), fill="#0b5cad")
    d.polygon([(560, 350), (560, 490), (680, 420)], fill="#0b5cad")
    for j in range(3):
        d.line((310, 530 + j * 0, 890, 530), fill="#d5dbe3", width=10)
    d.line((310, 530, 610, 530), fill="#1f8a70", width=10)
    d.polygon([(180, 620), (1020, 620), (1090, 680), (110, 680)], fill="#3b414a")
    d.rectangle((1010, 520, 1110, 650), fill="#c7643a")
    for k in range(5):
        d.ellipse((1000 + k * 18 - 50, 380 + (k % 2) * 40, 1060 + k * 18, 520), fill="#2f8a4f")
    d.rectangle((80, 560, 230, 650), fill="#f4d35e")
    img.save(path, "JPEG", quality=90)


def padlock(path: Path) -> None:
    """A padlock drawn over a map of the Americas."""
    w, h = 1200, 900
    img = sky((w, h), "#e8f1f8", "#cfe2f0")
    d = ImageDraw.Draw(img)
    land = "#9cc5a1"
    d.polygon(
        [
            (170, 90),
            (520, 60),
            (640, 160),
            (560, 300),
            (470, 330),
            (420, 420),
            (360, 380),
            (250, 300),
            (180, 200),
        ],
        fill=land,
    )
    d.polygon([(420, 420), (480, 470), (520, 520), (470, 520), (430, 470)], fill=land)
    d.polygon(
        [
            (520, 520),
            (700, 560),
            (820, 650),
            (760, 780),
            (660, 880),
            (600, 880),
            (590, 720),
            (520, 620),
        ],
        fill=land,
    )
    d.arc((640, 250, 940, 560), 180, 360, fill="#0b3d66", width=46)
    d.rounded_rectangle((600, 400, 980, 760), radius=40, fill="#0b5cad")
    d.ellipse((760, 520, 820, 580), fill="#ffffff")
    d.rectangle((778, 560, 802, 660), fill="#ffffff")
    img.save(path, "JPEG", quality=90)


def logo(path: Path) -> None:
    """The masthead mark: a globe (white on transparent)."""
    size = 256
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    white = "#ffffff"
    d.ellipse((28, 28, 228, 228), outline=white, width=14)
    d.ellipse((88, 28, 168, 228), outline=white, width=10)
    d.line((28, 128, 228, 128), fill=white, width=10)
    d.line((50, 78, 206, 78), fill=white, width=8)
    d.line((50, 178, 206, 178), fill=white, width=8)
    img.save(path, "PNG", optimize=True)


def main() -> None:
    MONTH.mkdir(parents=True, exist_ok=True)
    video_call(MONTH / "recruitment-exchange.jpg")
    graduation(MONTH / "usfroh-graduation.jpg")
    network_map(MONTH / "smuggling-cybercrime.jpg")
    megaphone(MONTH / "crisis-communication.jpg")
    online_course(MONTH / "information-hubs-course.jpg")
    padlock(MONTH / "data-protection.jpg")
    logo(LOGO)


if __name__ == "__main__":
    main()
