"""``report.html``: the grade as a student wants to read it, one self-contained file.

Written beside the results after every grade (no network, no scripts): the score per question,
every check with its verdict, named mistake and the command that reruns it, and the pictures
checks attached (:class:`~autograder.registry.Figures`): image grids as inline PNGs (encoded
here with zlib: the grading process does not import matplotlib, ~40 MB of the container's
768 MB), bar charts and curves as inline SVG.
"""
from __future__ import annotations

import base64
import html
import struct
import zlib
from pathlib import Path
from typing import Any

from .config import sort_key

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} .total{font-size:1.2em;margin:.2em 0 1em}
table{border-collapse:collapse;width:100%;margin:1em 0;table-layout:fixed} td{overflow-wrap:anywhere}
td:first-child,th:first-child{width:4.5em} td.pts,th:last-child{width:6.5em} td,th{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4} .pts{white-space:nowrap;text-align:right}
.ok{color:#17803d;font-weight:600} .bad{color:#b42318;font-weight:600}
.msg p{margin:.2em 0} .msg code,.msg pre{background:#f6f6f6;padding:.1em .3em;border-radius:3px}
.msg pre{padding:.5em;overflow-x:auto} figure{margin:1em 0;padding:.6em;border:1px solid #e4e4e4;border-radius:6px}
figcaption{font-size:.9em;color:#555;margin-top:.4em} .row{display:flex;align-items:center;gap:.6em;margin:.2em 0}
.row span{width:9em;font-size:.85em;color:#444} img{image-rendering:pixelated;border:1px solid #ccc;max-width:100%}
.labels{font-size:.75em;color:#555;margin-left:9.6em}
"""


# ----------------------------------------------------------------------------- images
def _png(pixels: list[list[int]]) -> bytes:
    """A greyscale 8-bit PNG of ``pixels`` (rows of 0..255)."""
    h, w = len(pixels), len(pixels[0]) if pixels else 0
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def strip_png(images: Any, scale: int = 0) -> str:
    """A row of images (tensor or nested lists [N, H, W] / [N, C, H, W], values in [0, 1]) as a
    data URI: side by side, 2 pixels apart, each pixel ``scale`` x ``scale`` (0: 2, or 1 for a
    strip wider than 400 pixels, which keeps a 20 x 20 manifold at ~300 KB)."""
    import torch

    t = torch.as_tensor(images, dtype=torch.float32).detach().cpu()
    if t.dim() == 4:
        t = t.mean(1)  # channels -> grey
    if t.dim() == 2:
        t = t[None]
    t = torch.nan_to_num(t.clamp(0, 1), nan=0.0)
    n, h, w = t.shape
    gap = 2
    canvas = torch.ones(h, n * (w + gap) - gap)
    scale = scale or (1 if canvas.shape[1] > 400 else 2)
    for i in range(n):
        canvas[:, i * (w + gap): i * (w + gap) + w] = t[i]
    canvas = canvas.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    rows = (canvas * 255).round().to(torch.uint8).tolist()
    return "data:image/png;base64," + base64.b64encode(_png(rows)).decode()


def _bars_svg(values: dict[str, float], limit: float) -> str:
    width, bar_h, label_w = 520, 22, 190
    items = list(values.items())
    height = bar_h * len(items) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for i, (name, v) in enumerate(items):
        y = 4 + i * bar_h
        frac = max(0.0, min(1.0, float(v) / limit)) if limit else 0.0
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{html.escape(name)}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{frac * (width - label_w - 60):.1f}" height="{bar_h - 8}" '
                     f'fill="#4a7bd0"/><text x="{label_w + frac * (width - label_w - 60) + 4:.1f}" y="{y + 15}" '
                     f'font-size="12">{v:.3f}</text>')
    return "".join(parts) + "</svg>"


def _curve_svg(ys: list[float], x_label: str) -> str:
    width, height, pad = 520, 180, 34
    if len(ys) < 2:
        return ""
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1.0
    pts = " ".join(f"{pad + i * (width - 2 * pad) / (len(ys) - 1):.1f},{height - pad - (y - lo) / span * (height - 2 * pad):.1f}"
                   for i, y in enumerate(ys))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'<polyline points="{pts}" fill="none" stroke="#4a7bd0" stroke-width="1.5"/>'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>'
            f'<text x="{pad}" y="{pad - 8}" font-size="11">{hi:.3f}</text>'
            f'<text x="{pad}" y="{height - pad + 14}" font-size="11">{lo:.3f}</text>'
            f'<text x="{width - pad - 60}" y="{height - 6}" font-size="11">{html.escape(x_label)} ({len(ys)})</text></svg>')


def _figure(entry: dict[str, Any]) -> str:
    body = ""
    if entry["kind"] == "images":
        for name, images in entry["rows"]:
            body += f'<div class="row"><span>{html.escape(name)}</span><img alt="{html.escape(name)}" src="{strip_png(images)}"></div>'
        for labels in entry.get("labels") or []:
            body += f'<div class="labels">{html.escape(" · ".join(labels))}</div>'
    elif entry["kind"] == "bars":
        body = _bars_svg(entry["values"], float(entry.get("limit", 1.0)))
    elif entry["kind"] == "curve":
        body = _curve_svg(entry["ys"], entry.get("x_label", "step"))
    caption = f"<figcaption>{html.escape(entry['title'])}" + (
        f" — {html.escape(entry['caption'])}" if entry.get("caption") else "") + "</figcaption>"
    return f"<figure>{body}{caption}</figure>"


# ----------------------------------------------------------------------------- text
def _message(text: str) -> str:
    """A check's markdown output as HTML: paragraphs, ```text blocks``` and `code` spans."""
    out = []
    for para in text.split("\n\n"):
        if para.startswith("Your code printed:\n```"):
            inner = para.split("```text\n", 1)[-1].rsplit("\n```", 1)[0]
            out.append(f"<p>Your code printed:</p><pre>{html.escape(inner)}</pre>")
            continue
        pieces = html.escape(para).split("`")
        para_html = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
        out.append(f"<p>{para_html.replace(chr(10), '<br>')}</p>")
    return "".join(out)


def render(results: dict[str, Any], figures: list[dict[str, Any]], questions: dict[str, str], title: str) -> str:
    tests = sorted(results.get("tests", []), key=lambda t: sort_key(str(t.get("number", ""))))
    total = sum(t.get("max_score", 0) for t in tests)
    by_question: dict[str, list[dict[str, Any]]] = {}
    for t in tests:
        by_question.setdefault(str(t.get("number", "")).rsplit(".", 1)[0], []).append(t)
    rows = "".join(
        f"<tr><td>{html.escape(q)}</td><td>{html.escape(questions.get(q, ''))}</td>"
        f'<td class="pts">{sum(t["score"] for t in ts):g} / {sum(t["max_score"] for t in ts):g}</td></tr>'
        for q, ts in by_question.items())
    figs: dict[str, list[str]] = {}
    for entry in figures:
        figs.setdefault(entry["check"], []).append(_figure(entry))
    checks = []
    for t in tests:
        ok = t["score"] >= t["max_score"] - 1e-9
        verdict = '<span class="ok">passed</span>' if ok else '<span class="bad">lost points</span>'
        text = str(t.get("output", "")).strip()
        message = "" if ok and (not figs.get(t["number"]) or text in ("", "PASSED:")) else \
            f'<div class="msg">{_message(text)}</div>'
        checks.append(f'<tr><td>{html.escape(str(t["number"]))}</td><td>{html.escape(t["name"])}<br>{verdict}{message}'
                      f'{"".join(figs.get(t["number"], []))}</td><td class="pts">{t["score"]:g} / {t["max_score"]:g}</td></tr>')
    summary = html.escape(str(results.get("output", "")).split("\n", 1)[0])
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}: your grade</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f'<div class="total">Score: <b>{results.get("score", 0):g} / {total:g}</b></div><p>{summary}</p>'
            f"<h2>Per question</h2><table><tr><th>question</th><th></th><th>points</th></tr>{rows}</table>"
            f"<h2>Checks</h2><table><tr><th>check</th><th>what, verdict, why</th><th>points</th></tr>{''.join(checks)}</table>"
            "</body></html>")


def write(path: Path, results: dict[str, Any], figures: list[dict[str, Any]], questions: dict[str, str], title: str) -> None:
    path.write_text(render(results, figures, questions, title), encoding="utf-8")
