"""Word document -> HTML with mammoth, which reads the OOXML (styles, numbering, notes, merged cells) for us.

What mammoth leaves out, added here through its own extension points: Title and code styles in the style map,
monospace-font runs and paragraphs marked as code by a document transform, images collected in memory (the
caller writes them only once the whole document converted).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import mammoth
import mammoth.documents
import mammoth.html
import mammoth.transforms

from hone.errors import HoneError

_CODE_RUN = "Hone Code"  # the style names the transform below gives monospace runs and paragraphs
_CODE_BLOCK = "Hone Code Block"

# Character and paragraph styles that mean code, in Word, LibreOffice, pandoc and Google Docs exports.
_CODE_RUN_STYLES = ("Verbatim Char", "HTML Code", "Code", "Code Char", "Source Code Char", "Inline Code",
                    "HTML Typewriter", "HTML Keyboard", _CODE_RUN)
_CODE_BLOCK_STYLES = ("Source Code", "HTML Preformatted", "Code", "Code Block", "Preformatted Text", "Plain Text",
                      "Macro Text", _CODE_BLOCK)
_MONOSPACE_FONTS = ("courier", "consolas", "menlo", "monaco", "lucida console", "lucida sans typewriter",
                    "andale mono", "source code", "fira code", "fira mono", "jetbrains mono", "cascadia",
                    "dejavu sans mono", "liberation mono", "roboto mono", "ubuntu mono", "sf mono", "inconsolata",
                    "space mono", "ibm plex mono", "noto mono", "pt mono", "monospace")
# mammoth's notes on styles it has no mapping for: every unmapped Word style would print one.
_STYLE_NOISE = re.compile(r"^Unrecognised \w+ style|style with ID .* was referenced but not defined")


def _list_path(kind: str, depth: int) -> str:
    """mammoth's path for a list item `depth` levels deep (as its default map writes them)."""
    return " > ".join(["ul|ol > li"] * (depth - 1) + [f"{kind} > li:fresh"])


# A heading that is also a list item (Google Docs writes these) stays both, as pandoc keeps it.
_NUMBERED_HEADINGS = [
    f"p[style-name='Heading {level}']:{kind}-list({depth}) => {_list_path(tag, depth)} > h{level}:fresh"
    for level in range(1, 7) for kind, tag in (("unordered", "ul"), ("ordered", "ol")) for depth in range(1, 6)]

# Word's built-in "List Bullet 2", "List Number 3"... are lists at that depth, whatever their numbering says.
_LIST_STYLES = [f"p[style-name='List {name}{'' if depth == 1 else f' {depth}'}'] => {_list_path(tag, depth)}"
                for name, tag in (("Bullet", "ul"), ("Number", "ol")) for depth in range(1, 6)]

STYLE_MAP = "\n".join([
    *_NUMBERED_HEADINGS,
    *_LIST_STYLES,
    "p[style-name='Title'] => h1:fresh",
    "p[style-name='Quote'] => blockquote > p:fresh",
    "p[style-name='Intense Quote'] => blockquote > p:fresh",
    *(f"p[style-name='{name}'] => pre:separator('\\n')" for name in _CODE_BLOCK_STYLES),
    *(f"r[style-name='{name}'] => code" for name in _CODE_RUN_STYLES),
])


@dataclass(frozen=True)
class Image:
    """One picture of the document, in order of appearance; `name` is its file name in the assets folder."""

    name: str
    data: bytes
    alt: str


@dataclass
class HtmlDocument:
    html: str
    images: list[Image]
    warnings: list[str]


def _is_monospace(font: str | None) -> bool:
    return bool(font) and any(name in font.lower() for name in _MONOSPACE_FONTS)


def _run_text(run) -> str:
    return "".join(t.value for t in mammoth.transforms.get_descendants_of_type(run, mammoth.documents.Text))


def _mark_code(document):
    """Runs in a monospace font become code; a plain paragraph whose every run with text is code becomes a
    line of a code block (mammoth joins consecutive ones)."""
    def mark_run(run):
        if _is_monospace(run.font) and run.style_name not in _CODE_RUN_STYLES:
            return run.copy(style_id=None, style_name=_CODE_RUN)
        return run

    def mark_paragraph(paragraph):
        if paragraph.style_name not in (None, "Normal") or paragraph.numbering is not None:
            return paragraph
        runs = [r for r in mammoth.transforms.get_descendants_of_type(paragraph, mammoth.documents.Run)
                if _run_text(r)]
        if runs and all(r.style_name in _CODE_RUN_STYLES for r in runs):
            return paragraph.copy(style_id=None, style_name=_CODE_BLOCK)
        return paragraph

    return mammoth.transforms.paragraph(mark_paragraph)(mammoth.transforms.run(mark_run)(document))


_EXTENSIONS = {"image/jpeg": "jpg", "image/svg+xml": "svg", "image/x-emf": "emf", "image/x-wmf": "wmf",
               "image/tiff": "tif"}


def _extension(content_type: str | None) -> str:
    content_type = (content_type or "").lower()
    if content_type in _EXTENSIONS:
        return _EXTENSIONS[content_type]
    subtype = content_type.partition("/")[2]
    return subtype if subtype.isalnum() else "bin"


def docx_to_html(data: bytes, image_src) -> HtmlDocument:
    """Convert .docx bytes; `image_src(name)` gives the link an image named `name` gets in the HTML.

    mammoth reads untrusted XML: whatever it raises on a broken document is reported as a corrupt .docx.
    """
    images: list[Image] = []
    warnings: list[str] = []

    def convert_image(image):
        try:
            with image.open() as f:
                payload = f.read()
        except KeyError as e:  # the document points at a picture its archive does not hold
            warnings.append(f"missing picture skipped ({e})")
            return []
        name = f"image{len(images) + 1}.{_extension(image.content_type)}"
        alt = (image.alt_text or "").strip()
        images.append(Image(name=name, data=payload, alt=alt))
        return [mammoth.html.element("img", {"src": image_src(name), "alt": alt})]

    try:
        result = mammoth.convert_to_html(io.BytesIO(data), style_map=STYLE_MAP, transform_document=_mark_code,
                                         convert_image=convert_image)
    except Exception as e:
        raise HoneError(f"corrupt .docx ({type(e).__name__}: {e})") from None
    warnings += [m.message for m in result.messages if not _STYLE_NOISE.search(m.message)]
    return HtmlDocument(html=result.value, images=images, warnings=warnings)
