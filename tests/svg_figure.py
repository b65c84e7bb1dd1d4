"""Read back what a figure shows from its SVG: the series the plotting code named (matplotlib ``gid``:
``line|...``, ``bar|...``, ``items``, ``heatmap``) and the texts (titles, labels, ticks, legend)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

SVG = "{http://www.w3.org/2000/svg}"


def series(path: Path) -> dict[str, dict]:
    """Each named series: ``points`` (markers of a line or scatter; 1 for a bar); for a line or scatter
    its markers' ``xs`` (SVG units, left to right in the figure), for a bar its ``height`` and for an
    ``interval|...`` group (error bars) the ``spans`` of its segments, in SVG units (0 when empty)."""
    found = {}
    root = ET.parse(path).getroot()
    for image in root.iter(f"{SVG}image"):  # an image carries its id itself
        if image.get("id") == "heatmap":
            found["heatmap"] = {"points": 1}
    for group in root.iter(f"{SVG}g"):
        gid = group.get("id", "")
        if "|" not in gid and gid != "items":
            continue
        if gid.startswith("bar|"):
            ys = [float(y) for y in re.findall(r"L [\d.]+ ([\d.]+)", group.find(f"{SVG}path").get("d"))]
            found[gid] = {"points": 1, "height": max(ys) - min(ys)}
        elif gid.startswith("interval|"):
            spans = []
            for path in group.iter(f"{SVG}path"):
                ys = [float(y) for y in re.findall(r"[ML] [\d.]+ ([\d.]+)", path.get("d"))]
                spans.append(max(ys) - min(ys))
            found[gid] = {"points": len(spans), "spans": spans}
        else:
            uses = list(group.iter(f"{SVG}use"))
            found[gid] = {"points": len(uses)}
            if gid.startswith("line|"):
                found[gid]["xs"] = [float(use.get("x")) for use in uses]
    return found


def texts(path: Path) -> list[str]:
    """Every text of the figure (matplotlib writes each, drawn as glyphs, after an XML comment)."""
    return re.findall(r"<!-- (.*?) -->", path.read_text(encoding="utf-8"))
