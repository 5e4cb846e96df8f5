"""One Word document to one Markdown file and its pictures, written only once everything converted."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from hone.atomic import write_bytes_atomic, write_text_atomic
from hone.docx.sniff import read_docx_bytes
from hone.docx.to_html import Image, docx_to_html
from hone.docx.to_markdown import html_to_markdown
from hone.errors import HoneError


@dataclass
class Converted:
    markdown: str
    images: list[Image]
    warnings: list[str]


def docx_to_markdown(data: bytes, assets_link: str) -> Converted:
    """Convert .docx bytes in memory; pictures are linked as `<assets_link>/imageN.ext`."""
    doc = docx_to_html(data, lambda name: f"{assets_link}/{name}")
    return Converted(markdown=html_to_markdown(doc.html), images=doc.images, warnings=doc.warnings)


def convert_file(source: Path, markdown: Path, assets: Path, overwrite: bool = False) -> Converted:
    """Write `markdown` (atomically) and the document's pictures into `assets`, linked relatively.

    Raises HoneError with a one-line reason (without the path) for a file that cannot be converted; nothing is
    written then.
    """
    if markdown.exists() and not overwrite:
        raise HoneError(f"{markdown} exists (use --overwrite to replace it)")
    data = read_docx_bytes(source)
    link = quote(Path(os.path.relpath(assets, markdown.parent)).as_posix())
    converted = docx_to_markdown(data, link)
    try:
        for image in converted.images:
            write_bytes_atomic(assets / image.name, image.data)
        write_text_atomic(markdown, converted.markdown)
    except OSError as e:
        raise HoneError(f"cannot write {e.filename or markdown} ({e.strerror or e})") from None
    return converted
