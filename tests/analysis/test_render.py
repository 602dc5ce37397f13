"""Markdown and HTML from one list of blocks: same content, HTML escaped and self-contained."""

import base64
import re

import pandas as pd
from matplotlib.figure import Figure

from analysis.render import FigureBlock, write_documents


def _blocks():
    figure = Figure(figsize=(2, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    table = pd.DataFrame({"explore": ["50%"], "mean": [0.97]})
    return [
        "# A <study>",
        "**Verdict: robust.** 50% & more",
        "## Sharpness",
        table,
        FigureBlock("curve.png", 'accuracy "vs" explore', figure),
    ]


def test_markdown_keeps_the_text_and_links_the_figure(tmp_path):
    write_documents(_blocks(), tmp_path, "title")

    markdown = (tmp_path / "report.md").read_text()
    assert markdown.split("\n\n")[:3] == [
        "# A <study>",
        "**Verdict: robust.** 50% & more",
        "## Sharpness",
    ]
    assert "| explore   |   mean |" in markdown
    assert markdown.endswith('![accuracy "vs" explore](curve.png)\n')


def test_html_escapes_text_and_embeds_the_png_it_wrote(tmp_path):
    write_documents(_blocks(), tmp_path, "<title>")

    page = (tmp_path / "report.html").read_text()
    assert "<title>&lt;title&gt;</title>" in page
    assert "<h1>A &lt;study&gt;</h1>" in page
    assert "<p><strong>Verdict: robust.</strong> 50% &amp; more</p>" in page
    assert "<h2>Sharpness</h2>" in page
    assert "<td>0.97</td>" in page
    (embedded,) = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    png = (tmp_path / "curve.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert base64.b64decode(embedded) == png
    assert 'alt="accuracy &quot;vs&quot; explore"' in page
