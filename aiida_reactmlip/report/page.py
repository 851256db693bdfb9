"""The HTML of the report pages (pure: strings in, HTML out): page frame, tables and figures."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

__all__ = ["figures", "page", "table"]

#: counts the images the browser loaded into ``data-images-total``/``data-images-loaded`` of the body
#: (what a headless-browser check of a report reads)
_IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.dataset.imagesTotal = images.length;
  document.body.dataset.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
});
</script>
"""


def figures(names: Iterable[str]) -> str:
    """One ``<figure>`` per image file name (relative to the page), captioned with the name."""
    return "".join(
        f'<figure><img src="{name}" alt="{html.escape(name)}"><figcaption>{html.escape(name)}</figcaption></figure>'
        for name in names
    )


def table(element_id: str, head: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    """A ``<table id=element_id>`` of text cells (escaped here) under the header ``head``."""
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in body)
    return f'<table id="{element_id}"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>'


def page(title: str, body: str, *, max_width: int = 1100, image_width: int = 520,
         table_style: str = "border-collapse:collapse", image_check: bool = True) -> str:
    """A whole HTML page titled ``title`` (escaped here) around ``body`` (HTML, from its ``<h1>`` on).

    ``max_width``/``image_width``: widths in CSS pixels of the page and of each image; ``image_check``:
    add the script that records how many images loaded.
    """
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:{max_width}px}}table{{{table_style}}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}figure{{display:inline-block;margin:8px}}
img{{max-width:{image_width}px}}</style></head>
<body>{body}
{_IMAGE_CHECK if image_check else ""}</body></html>
"""
