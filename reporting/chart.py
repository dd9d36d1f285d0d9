"""A small bar chart as PNG bytes for e-mails, drawn with Pillow (already a dependency).

Mail clients cannot run Chart.js; a plotting library such as matplotlib would add tens of
megabytes for one bar chart, so it is drawn directly.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

WIDTH, HEIGHT, PAD = 640, 240, 28


def bar_chart_png(*, labels: list[str], values: list[int], title: str) -> bytes:
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    draw.text((PAD, 6), title, fill="#222222")
    top = max(values) if values and max(values) > 0 else 1
    n = max(len(values), 1)
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD - 10
    bar_w = plot_w / n
    base_y = HEIGHT - PAD
    draw.line((PAD, base_y, WIDTH - PAD, base_y), fill="#888888")
    for i, value in enumerate(values):
        h = plot_h * value / top
        x0 = PAD + i * bar_w + bar_w * 0.15
        x1 = PAD + (i + 1) * bar_w - bar_w * 0.15
        draw.rectangle((x0, base_y - h, x1, base_y), fill="#3b6fb6")
    if labels:
        draw.text((PAD, base_y + 4), labels[0], fill="#555555")
        draw.text((WIDTH - PAD - 60, base_y + 4), labels[-1], fill="#555555")
    draw.text((WIDTH - PAD - 60, 6), f"max {top}", fill="#555555")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
