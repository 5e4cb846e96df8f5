"""Word documents built in the tests, the way Word writes them, with python-docx plus the few parts it lacks.

python-docx has no API for hyperlinks, footnotes or multi-level numbering, so those are written as the same
OOXML Word writes (w:hyperlink with an external relationship, a footnotes part, w:numPr with w:ilvl).
The bad inputs are real too: an encrypted .docx comes from msoffcrypto-tool (the ECMA-376 agile encryption
Word uses), an old .doc is an OLE compound file with a WordDocument stream.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import docx
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.opc.part import Part
from docx.oxml import OxmlElement, parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.shared import Inches

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def png_bytes(width: int = 4, height: int = 3, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A valid solid-colour PNG, written by hand so the tests need no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


class Doc:
    """A python-docx Document with the helpers Word features need; `save` writes the footnotes part last."""

    def __init__(self) -> None:
        self.doc = docx.Document()
        self.footnotes: list[str] = []
        self._next_num_id = 100
        self._bookmarks = 0

    def heading(self, text: str, level: int):
        return self.doc.add_heading(text, level=level)

    def para(self, *runs: str | tuple[str, dict]):
        """A paragraph of runs; a run is text or (text, {"bold": True, "italic": True, "strike": True,
        "font": "Courier New", "style": "Verbatim Char", "break_after": True})."""
        p = self.doc.add_paragraph()
        for item in runs:
            self.run(p, item)
        return p

    def run(self, p, item: str | tuple[str, dict]):
        text, fmt = (item, {}) if isinstance(item, str) else item
        r = p.add_run(text)
        r.bold = fmt.get("bold")
        r.italic = fmt.get("italic")
        if fmt.get("strike"):
            r.font.strike = True
        if "font" in fmt:
            r.font.name = fmt["font"]
        if "style" in fmt:
            self.char_style(fmt["style"])
            r.style = fmt["style"]
        if fmt.get("break_after"):
            r.add_break()
        return r

    def char_style(self, name: str) -> None:
        from docx.enum.style import WD_STYLE_TYPE

        if name not in [s.name for s in self.doc.styles]:
            self.doc.styles.add_style(name, WD_STYLE_TYPE.CHARACTER)

    def hyperlink(self, p, text: str, url: str | None = None, anchor: str | None = None) -> None:
        """A link to a web address (`url`) or to a bookmark in the document (`anchor`)."""
        link = OxmlElement("w:hyperlink")
        if url is not None:
            link.set(qn("r:id"), p.part.relate_to(url, RT.HYPERLINK, is_external=True))
        else:
            link.set(qn("w:anchor"), anchor)
        run = OxmlElement("w:r")
        t = OxmlElement("w:t")
        t.text = text
        t.set(qn("xml:space"), "preserve")
        run.append(t)
        link.append(run)
        p._p.append(link)

    def bookmark(self, p, name: str) -> None:
        """A named bookmark around nothing at the start of `p`, as Word puts `_Toc...` ones on headings."""
        self._bookmarks += 1
        start = parse_xml(f'<w:bookmarkStart {nsdecls("w")} w:id="{self._bookmarks}" w:name="{name}"/>')
        end = parse_xml(f'<w:bookmarkEnd {nsdecls("w")} w:id="{self._bookmarks}"/>')
        p._p.insert(1 if p._p.pPr is not None else 0, end)
        p._p.insert(1 if p._p.pPr is not None else 0, start)

    def footnote(self, p, text: str) -> None:
        """A footnote reference at the end of `p`, its text in word/footnotes.xml (ids from 1, as Word)."""
        self.footnotes.append(text)
        run = p.add_run()
        ref = OxmlElement("w:footnoteReference")
        ref.set(qn("w:id"), str(len(self.footnotes)))
        run._r.append(ref)

    def list_items(self, items: list[tuple[int, str]], ordered: bool) -> None:
        """A list as Word writes one: one w:num over a multi-level w:abstractNum, the depth in w:ilvl."""
        num_id = self._new_numbering(ordered)
        for level, text in items:
            p = self.doc.add_paragraph(text, style="List Paragraph")
            p._p.get_or_add_pPr().append(parse_xml(
                f'<w:numPr {nsdecls("w")}><w:ilvl w:val="{level}"/><w:numId w:val="{num_id}"/></w:numPr>'))

    def _new_numbering(self, ordered: bool) -> int:
        numbering = self.doc.part.numbering_part.element
        num_id = self._next_num_id
        self._next_num_id += 1
        fmt, text = ("decimal", "%{n}.") if ordered else ("bullet", "\u2022")
        levels = "".join(
            f'<w:lvl w:ilvl="{i}"><w:start w:val="1"/><w:numFmt w:val="{fmt}"/>'
            f'<w:lvlText w:val="{text.format(n=i + 1)}"/><w:pPr><w:ind w:left="{720 * (i + 1)}" w:hanging="360"/>'
            f"</w:pPr></w:lvl>" for i in range(3))
        abstract = parse_xml(f'<w:abstractNum {nsdecls("w")} w:abstractNumId="{num_id}">'
                             f'<w:multiLevelType w:val="hybridMultilevel"/>{levels}</w:abstractNum>')
        first_num = numbering.find(qn("w:num"))
        if first_num is not None:
            first_num.addprevious(abstract)
        else:
            numbering.append(abstract)
        numbering.append(parse_xml(f'<w:num {nsdecls("w")} w:numId="{num_id}">'
                                   f'<w:abstractNumId w:val="{num_id}"/></w:num>'))
        return num_id

    def table(self, rows: list[list[str]], header: bool = True):
        """A table; cell text may hold '\\n' (a line break inside the cell). The first row repeats as header."""
        table = self.doc.add_table(rows=len(rows), cols=len(rows[0]))
        table.style = "Table Grid"
        for r, values in enumerate(rows):
            for c, value in enumerate(values):
                cell = table.cell(r, c)
                lines = value.split("\n")
                run = cell.paragraphs[0].add_run(lines[0])
                for line in lines[1:]:
                    run.add_break()
                    run = cell.paragraphs[0].add_run(line)
        if header:
            tr_pr = table.rows[0]._tr.get_or_add_trPr()
            tr_pr.append(OxmlElement("w:tblHeader"))
        return table

    def image(self, data: bytes, alt: str, width_in: float = 0.5) -> None:
        run = self.doc.add_paragraph().add_run()
        run.add_picture(io.BytesIO(data), width=Inches(width_in))
        run._r.xpath(".//wp:docPr")[0].set("descr", alt)

    def save(self, path: Path) -> Path:
        if self.footnotes:
            self._add_footnotes_part()
        self.doc.save(str(path))
        return path

    def _add_footnotes_part(self) -> None:
        notes = "".join(
            f'<w:footnote w:id="{i}"><w:p><w:pPr><w:pStyle w:val="FootnoteText"/></w:pPr>'
            f'<w:r><w:footnoteRef/></w:r><w:r><w:t xml:space="preserve"> {text}</w:t></w:r></w:p></w:footnote>'
            for i, text in enumerate(self.footnotes, start=1))
        xml = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:footnotes xmlns:w="{W_NS}">'
               '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
               '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r>'
               f"</w:p></w:footnote>{notes}</w:footnotes>")
        part = Part(PackURI("/word/footnotes.xml"), CT.WML_FOOTNOTES, xml.encode(), self.doc.part.package)
        self.doc.part.relate_to(part, RT.FOOTNOTES)


def encrypted_docx(plain: Path, out: Path, password: str = "secret") -> Path:
    """Encrypt a .docx as Word does for 'Protect with password': an OLE file holding EncryptedPackage."""
    from msoffcrypto.format.ooxml import OOXMLFile

    with open(plain, "rb") as f, open(out, "wb") as o:
        OOXMLFile(f).encrypt(password, o)
    return out


def ole_file(streams: dict[str, bytes]) -> bytes:
    """A minimal OLE compound file (CFB v3) holding `streams` at the root, as an old Word .doc is.

    Every stream is padded to at least 4096 bytes so it lives in regular sectors (no mini stream needed).
    """
    sector = 512
    end, free, fat_mark = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    datas = [data.ljust(max(len(data), 4096), b"\0") for data in streams.values()]
    data_sectors = [-(-len(d) // sector) for d in datas]
    dir_entries = 1 + len(streams)
    dir_sectors = -(-dir_entries * 128 // sector)
    total = dir_sectors + sum(data_sectors) + 1  # + the one FAT sector, placed last
    assert total <= sector // 4, "keep test streams small: one FAT sector"
    fat = []
    start = []
    cursor = 0
    for count in [dir_sectors, *data_sectors]:
        start.append(cursor)
        fat += [cursor + i + 1 for i in range(count - 1)] + [end]
        cursor += count
    fat.append(fat_mark)
    fat += [free] * (sector // 4 - len(fat))

    def entry(name: str, kind: int, first: int, size: int, child: int = free, right: int = free) -> bytes:
        encoded = (name + "\0").encode("utf-16-le")
        return (encoded.ljust(64, b"\0") + struct.pack("<HBB", len(encoded), kind, 1)
                + struct.pack("<III", free, right, child) + b"\0" * 16 + b"\0" * 4 + b"\0" * 16
                + struct.pack("<IQ", first, size))

    names = list(streams)
    directory = entry("Root Entry", 5, end, 0, child=1)
    for i, (name, data) in enumerate(zip(names, datas)):
        right = i + 2 if i + 1 < len(names) else free  # a right-leaning chain is a valid (if unbalanced) tree
        directory += entry(name, 2, start[i + 1], len(data), right=right)
    directory = directory.ljust(dir_sectors * sector, b"\0")
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
              + b"\0" * 6 + struct.pack("<IIIIIIIII", 0, 1, start[0], 0, 4096, end, 0, end, 0))
    difat = struct.pack("<I", total - 1) + struct.pack("<I", free) * 108
    body = directory + b"".join(d.ljust(n * sector, b"\0") for d, n in zip(datas, data_sectors))
    return header + difat + body + struct.pack(f"<{sector // 4}I", *fat)
