"""A report as a list of blocks, rendered as Markdown and as self-contained HTML.

A block is a paragraph (``"## "`` starts a heading, a leading ``**...**`` is bold), a table
(a DataFrame) or a :class:`FigureBlock`. Both documents come from the same blocks, so they never
disagree.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure


@dataclass(frozen=True)
class FigureBlock:
    file: str  # the PNG's name in the report folder
    alt: str
    figure: Figure


Block = str | pd.DataFrame | FigureBlock


def clear_report(out: Path, files: tuple[str, ...]) -> None:
    """An empty report folder: made if missing, an earlier report's ``files`` removed (only
    those: ``out`` may be a folder of the user's)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in files:
        (out / name).unlink(missing_ok=True)


def write_documents(blocks: list[Block], out: Path, title: str) -> None:
    """The figures as PNGs, ``report.md`` (figures linked) and ``report.html`` (figures
    embedded) in the existing folder ``out``."""
    for block in blocks:
        if isinstance(block, FigureBlock):
            block.figure.savefig(out / block.file, dpi=120)
    (out / "report.md").write_text(_markdown(blocks))
    (out / "report.html").write_text(_html(blocks, title, out))


def _markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, pd.DataFrame):
            parts.append(block.to_markdown(index=False))
        elif isinstance(block, FigureBlock):
            parts.append(f"![{block.alt}]({block.file})")
        else:
            parts.append(block)
    return "\n\n".join(parts) + "\n"


def _html(blocks: list[Block], title: str, folder: Path) -> str:
    body = []
    for block in blocks:
        if isinstance(block, pd.DataFrame):
            body.append(block.to_html(index=False, border=0, na_rep=""))
        elif isinstance(block, FigureBlock):
            data = base64.b64encode((folder / block.file).read_bytes()).decode()
            body.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">')
        elif block.startswith("#"):
            level = len(block) - len(block.lstrip("#"))
            body.append(f"<h{level}>{html.escape(block.lstrip('# '))}</h{level}>")
        else:
            text = html.escape(block)
            if text.startswith("**"):  # the verdict: its first sentence in bold
                head, _, rest = text[2:].partition("**")
                text = f"<strong>{head}</strong>{rest}"
            body.append(f"<p>{text}</p>")
    return _PAGE.format(title=html.escape(title), body="\n".join(body))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; padding: 0 1em;
       line-height: 1.5; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }}
th {{ background: #f4f4f4; }}
img {{ max-width: 100%; }}
</style></head>
<body>
{body}
</body></html>
"""
