"""mammoth's HTML -> GitHub-flavoured Markdown with markdownify, plus what GFM needs and markdownify lacks.

Before conversion the HTML is reshaped with BeautifulSoup: note references become GFM footnotes, tables become
rectangular grids (a merged cell keeps its text once, the cells it covers are left empty), bold that only
repeats a heading's weight is dropped, and links to Word bookmarks in headings point at GitHub's heading ids.
The converter then writes pipe tables with escaped `|` and `<br>` for line breaks inside cells.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, NavigableString, Tag
from markdownify import ATX, BACKSLASH, MarkdownConverter

from hone.docx.escape import escape_inline, escape_line_start

_LINE = "\ue000"  # private-use marker for a line break inside a table cell, resolved when the cell is written
_HEADING = re.compile(r"^h[1-6]$")
_BLOCKS = {"p", "li", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "div"}
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
_NOTE_ID = re.compile(r"^(footnote|endnote)-(-?\d+)$")


def html_to_markdown(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")
    notes = _take_notes(soup)
    _drop_heading_bold(soup)
    _link_bookmarks_to_headings(soup)
    _drop_empty_blocks(soup)
    _quote_hrefs(soup)
    _drop_edge_breaks(soup)
    for table in soup.find_all("table"):
        _make_rectangular(table)
    converter = _GfmConverter()
    body = converter.convert_soup(soup).strip()
    definitions = [_note_definition(number, note, converter) for number, note in enumerate(notes, start=1)]
    text = "\n\n".join(part for part in [body, *definitions] if part)
    return text + "\n" if text else ""


def _take_notes(soup: BeautifulSoup) -> list[Tag]:
    """Replace each note reference by a `hone-note` tag (numbered in reading order); return the notes' bodies."""
    notes = {li["id"]: li for li in soup.find_all("li", id=_NOTE_ID)}
    ordered: list[Tag] = []
    for ref in soup.find_all("a", href=True, id=True):
        note = notes.get(ref["href"].lstrip("#"))
        if note is None or any(note is seen for seen in ordered):
            continue
        ordered.append(note)
        marker = soup.new_tag("hone-note", attrs={"n": str(len(ordered))})
        (ref.parent if ref.parent.name == "sup" else ref).replace_with(marker)
    for note in notes.values():
        for back_link in note.find_all("a", href=re.compile(r"^#(footnote|endnote)-ref-")):
            back_link.decompose()
        note.extract()
    for empty_list in soup.find_all("ol"):
        if not empty_list.find("li"):
            empty_list.decompose()
    return ordered


def _note_definition(number: int, note: Tag, converter: MarkdownConverter) -> str:
    note.name = "div"
    text = converter.convert_soup(note).strip()
    lines = text.split("\n")
    rest = "".join("\n" + ("    " + line if line else "") for line in lines[1:])
    return f"[^{number}]: {lines[0]}{rest}"


def _drop_heading_bold(soup: BeautifulSoup) -> None:
    """`## **Phase 1**` says nothing `## Phase 1` does not: unwrap bold that covers a whole heading."""
    for heading in soup.find_all(_HEADING):
        texts = [t for t in heading.find_all(string=True) if t.strip()]
        if texts and all(t.find_parent("strong") is not None for t in texts):
            for strong in heading.find_all("strong"):
                strong.unwrap()


def github_slug(text: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _link_bookmarks_to_headings(soup: BeautifulSoup) -> None:
    """Word links to bookmarks (a table of contents links to `_Toc...`); on GitHub only heading ids exist."""
    slugs: dict[int, str] = {}
    seen: dict[str, int] = {}
    for heading in soup.find_all(_HEADING):
        base = github_slug(heading.get_text())
        count = seen.get(base, 0)
        seen[base] = count + 1
        slugs[id(heading)] = base if count == 0 else f"{base}-{count}"
    targets = {}
    for anchor in soup.find_all("a", id=True, href=False):
        heading = anchor if _HEADING.match(anchor.name) else anchor.find_parent(_HEADING)
        if heading is not None:
            targets[anchor["id"]] = slugs[id(heading)]
        anchor.unwrap()
    for link in soup.find_all("a", href=re.compile(r"^#")):
        slug = targets.get(link["href"][1:])
        if slug is not None:
            link["href"] = "#" + slug


def _drop_empty_blocks(soup: BeautifulSoup) -> None:
    """Word keeps empty headings and list items (spacing, deleted text); Markdown would show a bare `##`."""
    for block in soup.find_all([_HEADING, "li", "p"]):
        if not block.get_text(strip=True) and not block.find(["img", "hone-note"]):
            block.decompose()


def _quote_hrefs(soup: BeautifulSoup) -> None:
    """Characters that would end or break a Markdown link destination."""
    for link in soup.find_all("a", href=True):
        link["href"] = link["href"].replace(" ", "%20").replace("(", "%28").replace(")", "%29") \
            .replace("<", "%3C").replace(">", "%3E")


def _drop_edge_breaks(soup: BeautifulSoup) -> None:
    """A line break at the very start or end of a paragraph or cell shows nothing in Word; in Markdown it would
    leave a stray backslash."""
    for br in soup.find_all("br"):
        if _at_block_edge(br, "previous_sibling") or _at_block_edge(br, "next_sibling"):
            br.decompose()


def _at_block_edge(node: Tag, direction: str) -> bool:
    while True:
        sibling = getattr(node, direction)
        while sibling is not None and isinstance(sibling, NavigableString) and not sibling.strip():
            sibling = getattr(sibling, direction)
        if sibling is not None:
            return False
        node = node.parent
        if node is None or node.name in _BLOCKS:
            return True


def _make_rectangular(table: Tag) -> None:
    """Rows as direct children, the first one the header; spans expanded into empty cells, so every row has
    as many cells as the widest and a merged cell's text is written once, where it starts."""
    for group in table.find_all(["thead", "tbody", "tfoot"], recursive=False):
        group.unwrap()
    rows = table.find_all("tr", recursive=False)
    pending: dict[int, int] = {}  # column -> rows still covered by a cell spanning down into them
    grid: list[list[Tag]] = []
    for row in rows:
        cells: list[Tag] = []
        for cell in row.find_all(["td", "th"], recursive=False):
            while pending.get(len(cells)):
                pending[len(cells)] -= 1
                cells.append(_empty_cell())
            colspan = _span(cell, "colspan")
            rowspan = _span(cell, "rowspan")
            start = len(cells)
            cells.append(cell)
            cells.extend(_empty_cell() for _ in range(colspan - 1))
            if rowspan > 1:
                for column in range(start, start + colspan):
                    pending[column] = rowspan - 1
            for attr in ("colspan", "rowspan"):
                cell.attrs.pop(attr, None)
        last_covered = max((column for column, rows_left in pending.items() if rows_left), default=-1)
        while len(cells) <= last_covered:
            if pending.get(len(cells)):
                pending[len(cells)] -= 1
            cells.append(_empty_cell())
        grid.append(cells)
    width = max((len(cells) for cells in grid), default=0)
    for row, cells in zip(rows, grid):
        cells.extend(_empty_cell() for _ in range(width - len(cells)))
        row.clear()
        row.extend(cells)


def _span(cell: Tag, attr: str) -> int:
    value = str(cell.get(attr, "1"))
    return max(1, min(int(value), 1000)) if value.isdigit() else 1


def _empty_cell() -> Tag:
    return BeautifulSoup("", "html.parser").new_tag("td")


def _starts_line(node) -> bool:
    """Whether text begins a line of output: first in its block (through inline parents) or after a break."""
    while True:
        previous = node.previous_sibling
        while isinstance(previous, NavigableString) and not previous.strip():
            previous = previous.previous_sibling
        if previous is not None:
            return isinstance(previous, Tag) and previous.name == "br"
        node = node.parent
        if node is None or node.name in _BLOCKS:
            return True


def _in_cell(parent_tags: set[str]) -> bool:
    return "td" in parent_tags or "th" in parent_tags


class _GfmConverter(MarkdownConverter):
    """markdownify set for GFM, with table cells, notes and block-start escaping done the GFM way."""

    def __init__(self) -> None:
        super().__init__(heading_style=ATX, bullets="-", newline_style=BACKSLASH, strong_em_symbol="*",
                         sub_symbol="<sub>", sup_symbol="<sup>", autolinks=True)

    def escape(self, text, parent_tags):
        return escape_inline(text) if text else ""

    def process_text(self, el, parent_tags=None):
        text = super().process_text(el, parent_tags)
        if text and "_noformat" not in (parent_tags or ()) and _starts_line(el):
            return escape_line_start(text)
        return text

    def convert_hone_note(self, el, text, parent_tags):
        return f"[^{el['n']}]"

    def convert_br(self, el, text, parent_tags):
        if "pre" in parent_tags:
            return "\n"
        if _in_cell(parent_tags):
            return _LINE
        return super().convert_br(el, text, parent_tags)

    def convert_p(self, el, text, parent_tags):
        text = text.strip(" \t\r\n")
        if _in_cell(parent_tags):
            return _LINE + text + _LINE
        if "_inline" in parent_tags:
            return " " + text + " "
        return f"\n\n{text}\n\n" if text else ""

    convert_div = convert_p

    def convert_hN(self, n, el, text, parent_tags):
        if _in_cell(parent_tags):
            return _LINE + text.strip() + _LINE
        return super().convert_hN(n, el, text, parent_tags)

    def convert_blockquote(self, el, text, parent_tags):
        if _in_cell(parent_tags):
            return _LINE + text.strip() + _LINE
        return super().convert_blockquote(el, text, parent_tags)

    def convert_pre(self, el, text, parent_tags):
        if _in_cell(parent_tags):
            return _LINE + _LINE.join(f"`{line}`" for line in text.split("\n") if line.strip()) + _LINE
        return super().convert_pre(el, text, parent_tags)

    def convert_li(self, el, text, parent_tags):
        if _in_cell(parent_tags):
            parent = el.parent
            bullet = f"{len(el.find_previous_siblings('li')) + 1}." if parent and parent.name == "ol" else "-"
            return _LINE + bullet + " " + text.strip() + _LINE
        return super().convert_li(el, text, parent_tags)

    def convert_list(self, el, text, parent_tags):
        if _in_cell(parent_tags):
            return text
        return super().convert_list(el, text, parent_tags)

    convert_ul = convert_list
    convert_ol = convert_list

    def convert_img(self, el, text, parent_tags):
        return f"![{escape_inline(el.get('alt', '') or '')}]({el.get('src', '')})"

    def convert_td(self, el, text, parent_tags):
        lines = [line.strip() for line in text.split(_LINE)]
        cell = "<br>".join(line for line in lines if line).replace("\n", " ")
        if _in_cell(parent_tags):  # a table inside a cell: its rows become lines, its cells `a | b`
            return cell + " | "
        return " " + _UNESCAPED_PIPE.sub(r"\\|", cell) + " |"  # text is escaped already; code spans are not

    convert_th = convert_td

    def convert_tr(self, el, text, parent_tags):
        if _in_cell(parent_tags):
            return _LINE + text.rstrip(" |") + _LINE
        row = "|" + text + "\n"
        if el.find_previous_sibling("tr") is None:
            row += "|" + " --- |" * len(el.find_all(["td", "th"], recursive=False)) + "\n"
        return row

    def convert_table(self, el, text, parent_tags):
        if _in_cell(parent_tags):
            return text
        return "\n\n" + text.strip("\n") + "\n\n"
