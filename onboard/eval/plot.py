"""summary.png of an evaluation report (Pillow only): success rate with its 95 % interval per colour and instruction,
and a histogram of times to success."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sim import tasks as T


def draw_summary(report: dict[str, Any], path: str | Path) -> Path:
    """summary.png: horizontal bars of success rate with 95 % interval whiskers (all, per colour, per instruction),
    and a histogram of times to success."""
    from PIL import Image, ImageDraw, ImageFont

    s = report["summary"]
    rows: list[tuple[str, dict]] = [("all", s)]
    rows += [(f"colour {c}", r) for c, r in s["per_color"].items()]
    rows += [(_shorten(i, 40), r) for i, r in s["per_instruction"].items()]
    font = ImageFont.load_default()
    width, label_w, margin, row_h = 900, 300, 20, 26
    bars_top = 50
    bars_h = row_h * len(rows)
    hist_top = bars_top + bars_h + 60
    hist_h = 200
    height = hist_top + hist_h + 50
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    cfg = report["config"]
    d.text(
        (margin, 10),
        f"{cfg['policy_type']} on {cfg['task']} ({cfg['split']}), n={s['n']}, {cfg['runner']} runner, "
        f"latency {cfg['latency']}: success rate with 95% Wilson CI",
        fill="black",
        font=font,
    )
    x0, x1 = label_w, width - margin - 60

    def xof(v: float) -> int:
        return round(x0 + v * (x1 - x0))

    for k in range(0, 11, 2):  # grid and axis labels
        x = xof(k / 10)
        d.line([(x, bars_top - 5), (x, bars_top + bars_h)], fill=(220, 220, 220))
        d.text((x - 8, bars_top + bars_h + 4), f"{k * 10}%", fill="gray", font=font)
    for j, (label, rate) in enumerate(rows):
        y = bars_top + j * row_h
        d.text((margin, y + 7), label, fill="black", font=font)
        color = (70, 110, 200) if j else (40, 150, 80)
        d.rectangle([x0, y + 4, max(x0 + 1, xof(rate["success_rate"])), y + row_h - 4], fill=color)
        lo, hi = rate["ci95"]
        ym = y + row_h // 2
        d.line([(xof(lo), ym), (xof(hi), ym)], fill="black", width=2)
        d.line([(xof(lo), ym - 6), (xof(lo), ym + 6)], fill="black", width=2)
        d.line([(xof(hi), ym - 6), (xof(hi), ym + 6)], fill="black", width=2)
        d.text((x1 + 8, y + 7), f"{rate['successes']}/{rate['n']}", fill="black", font=font)

    # histogram of time to success
    times = [e["time_to_success"] for e in report["episodes"] if e["success"] and e["time_to_success"] is not None]
    t_max = float(T.get_task(cfg["task"]).max_duration_s)
    nbins = 20
    counts = np.histogram(times, bins=nbins, range=(0.0, t_max))[0] if times else np.zeros(nbins, int)
    tts = s["time_to_success"]
    title = f"time to success (s), {len(times)} successes"
    if tts["n"]:
        title += f": median {tts['median']:.2f} s, p90 {tts['p90']:.2f} s"
    d.text((margin, hist_top - 25), title, fill="black", font=font)
    hx0, hx1, hy1 = margin + 40, width - margin, hist_top + hist_h
    top = max(1, int(counts.max()))
    d.line([(hx0, hy1), (hx1, hy1)], fill="black")
    d.line([(hx0, hist_top), (hx0, hy1)], fill="black")
    d.text((margin, hist_top - 5), str(top), fill="gray", font=font)
    d.text((margin, hy1 - 10), "0", fill="gray", font=font)
    bw = (hx1 - hx0) / nbins
    for b, c in enumerate(counts):
        if c:
            bx = hx0 + b * bw
            d.rectangle([round(bx + 1), round(hy1 - c / top * hist_h), round(bx + bw - 1), hy1], fill=(200, 120, 60))
    for b in range(0, nbins + 1, 4):
        x = round(hx0 + b * bw)
        d.text((x - 8, hy1 + 5), f"{b * t_max / nbins:g}", fill="gray", font=font)
    path = Path(path)
    img.save(path, format="PNG")
    return path


def _shorten(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
