"""Draw the current label, confidence and FPS on a frame (Pillow only, so --serve works without OpenCV).

Frames from the Pi camera arrive at the model's input size (e.g. 160x160); they are enlarged first so the text stays
readable in a browser or window.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_WIDTH = 480


@functools.lru_cache(maxsize=8)
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)  # scalable built-in font (Pillow >= 10.1 with FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def annotate(frame: np.ndarray, text: str, detail: str = "", min_width: int = MIN_WIDTH) -> Image.Image:
    """An annotated copy of an RGB frame: ``text`` (label and score) large, ``detail`` (fps, latency) small."""
    img = Image.fromarray(np.ascontiguousarray(frame))
    if img.width < min_width:
        scale = min_width / img.width
        img = img.resize((min_width, max(1, round(img.height * scale))), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img, "RGBA")
    big, small = _font(max(14, img.width // 20)), _font(max(10, img.width // 40))
    pad = max(4, img.width // 100)
    lines = [(text, big)] + ([(detail, small)] if detail else [])
    heights = [draw.textbbox((0, 0), t, font=f)[3] for t, f in lines]
    widths = [draw.textbbox((0, 0), t, font=f)[2] for t, f in lines]
    draw.rectangle([0, 0, max(widths) + 2 * pad, sum(heights) + (len(lines) + 1) * pad], fill=(0, 0, 0, 150))
    y = pad
    for (t, f), h in zip(lines, heights):
        draw.text((pad, y), t, font=f, fill=(255, 255, 255, 255))
        y += h + pad
    return img


def caption(label: str, score: float) -> str:
    return f"{label} {score * 100:.0f}%"
