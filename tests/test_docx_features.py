"""Each Word feature, in a document built here with python-docx, against the exact Markdown expected."""

from __future__ import annotations

from pathlib import Path

from docx_samples import Doc, png_bytes

from hone.docx import convert_file


def convert(doc: Doc, tmp_path: Path, name: str = "doc") -> str:
    source = doc.save(tmp_path / f"{name}.docx")
    markdown = tmp_path / "out" / f"{name}.md"
    convert_file(source, markdown, tmp_path / "out" / "assets" / name)
    return markdown.read_text(encoding="utf-8")


def test_title_and_headings_1_to_6(tmp_path):
    d = Doc()
    d.heading("Release Plan", 0)  # the Title style
    d.heading("Goals", 1)
    d.para("Ship it.")
    d.heading("", 2).add_run("Bold Heading").bold = True  # bold adds nothing to a heading: not written
    for level in range(3, 7):
        d.heading(f"Level {level}", level)
    assert convert(d, tmp_path) == (
        "# Release Plan\n\n# Goals\n\nShip it.\n\n## Bold Heading\n\n### Level 3\n\n#### Level 4\n\n"
        "##### Level 5\n\n###### Level 6\n")


def test_bold_italic_strikethrough_code_links_and_hard_breaks(tmp_path):
    d = Doc()
    d.para("Plain, ", ("bold", {"bold": True}), ", ", ("italic", {"italic": True}), ", ",
           ("both", {"bold": True, "italic": True}), ", ", ("gone", {"strike": True}), ", ",
           ("pip install hone", {"font": "Courier New"}), " and ", ("x = 1", {"style": "Verbatim Char"}), ".")
    p = d.para("Read ")
    d.hyperlink(p, "the guide", "https://example.com/guide?a=1&b=2")
    d.run(p, " or ")
    d.hyperlink(p, "https://example.com", "https://example.com")
    d.run(p, ".")
    d.para(("first line", {"break_after": True}), "second line")
    d.para(("trailing break is dropped", {"break_after": True}))
    assert convert(d, tmp_path) == (
        "Plain, **bold**, *italic*, ***both***, ~~gone~~, `pip install hone` and `x = 1`.\n\n"
        "Read [the guide](https://example.com/guide?a=1&b=2) or <https://example.com>.\n\n"
        "first line\\\nsecond line\n\n"
        "trailing break is dropped\n")


def test_nested_bulleted_and_numbered_lists(tmp_path):
    d = Doc()
    d.list_items([(0, "fruit"), (1, "apple"), (2, "green"), (1, "pear"), (0, "bread")], ordered=False)
    d.para("Steps:")
    d.list_items([(0, "mix"), (1, "stir well"), (1, "rest"), (0, "bake")], ordered=True)
    assert convert(d, tmp_path) == (
        "- fruit\n  - apple\n    - green\n  - pear\n- bread\n\n"
        "Steps:\n\n"
        "1. mix\n   1. stir well\n   2. rest\n2. bake\n")


def test_words_list_bullet_2_and_list_number_2_styles_nest(tmp_path):
    d = Doc()
    for style, text in (("List Bullet", "fruit"), ("List Bullet 2", "apple"), ("List Bullet 3", "green"),
                        ("List Number", "mix"), ("List Number 2", "stir"), ("List Number", "bake")):
        d.doc.add_paragraph(text, style=style)
    assert convert(d, tmp_path) == "- fruit\n  - apple\n    - green\n\n1. mix\n   1. stir\n2. bake\n"


def test_table_in_place_with_header_escaped_pipe_merged_cells_and_cell_line_breaks(tmp_path):
    d = Doc()
    d.para("Before the table.")
    t = d.table([["Name", "Value", "Note"], ["a|b", "1", "line1\nline2"], ["wide", "", "tall"], ["m2", "", ""]])
    t.cell(2, 0).merge(t.cell(2, 1))  # across: "wide" once, the covered cell left empty
    t.cell(2, 2).merge(t.cell(3, 2))  # down: "tall" once
    t.cell(3, 1).paragraphs[0].add_run("para 1")
    t.cell(3, 1).add_paragraph("para 2")
    d.para("After the table.")
    d.table([["k", "v"], ["x", "y"]], header=False)  # no header row marked: the first row is the header
    assert convert(d, tmp_path) == (
        "Before the table.\n\n"
        "| Name | Value | Note |\n"
        "| --- | --- | --- |\n"
        "| a\\|b | 1 | line1<br>line2 |\n"
        "| wide |  | tall |\n"
        "| m2 | para 1<br>para 2 |  |\n\n"
        "After the table.\n\n"
        "| k | v |\n| --- | --- |\n| x | y |\n")


def test_images_extracted_to_assets_with_relative_links_and_alt_text(tmp_path):
    red, blue = png_bytes(), png_bytes(2, 2, (0, 0, 255))
    d = Doc()
    d.para("A chart:")
    d.image(red, "Red square")
    d.image(blue, "Blue [square]")
    assert convert(d, tmp_path, "My Doc") == (
        "A chart:\n\n![Red square](assets/My%20Doc/image1.png)\n\n![Blue \\[square\\]](assets/My%20Doc/image2.png)\n")
    assert (tmp_path / "out/assets/My Doc/image1.png").read_bytes() == red
    assert (tmp_path / "out/assets/My Doc/image2.png").read_bytes() == blue


def test_assets_folder_elsewhere_is_linked_relative_to_the_markdown(tmp_path):
    d = Doc()
    d.image(png_bytes(), "Logo")
    source = d.save(tmp_path / "report.docx")
    convert_file(source, tmp_path / "md" / "report.md", tmp_path / "pictures" / "report")
    assert (tmp_path / "md/report.md").read_text() == "![Logo](../pictures/report/image1.png)\n"
    assert (tmp_path / "pictures/report/image1.png").read_bytes() == png_bytes()


def test_footnotes_become_gfm_footnotes(tmp_path):
    d = Doc()
    p = d.para("Hone measures")
    d.footnote(p, "On held-out items.")
    d.run(p, " and trains.")
    d.footnote(p, "With LoRA.")
    assert convert(d, tmp_path) == (
        "Hone measures[^1] and trains.[^2]\n\n[^1]: On held-out items.\n\n[^2]: With LoRA.\n")


def test_monospace_paragraphs_become_one_code_block(tmp_path):
    d = Doc()
    d.para("Run:")
    d.para(("pip install hone", {"font": "Consolas"}))
    d.para(("hone docx a.docx", {"font": "Consolas"}))
    d.para("Done.")
    assert convert(d, tmp_path) == "Run:\n\n```\npip install hone\nhone docx a.docx\n```\n\nDone.\n"


def test_link_to_a_bookmarked_heading_points_at_githubs_heading_id(tmp_path):
    d = Doc()
    p = d.para("See ")
    d.hyperlink(p, "Setup", anchor="_Toc1")
    d.run(p, ".")
    d.bookmark(d.heading("Setup & Install", 1), "_Toc1")
    assert convert(d, tmp_path) == "See [Setup](#setup--install).\n\n# Setup & Install\n"


def test_text_that_looks_like_markdown_stays_text(tmp_path):
    d = Doc()
    for line in ("1. Not a list", "# not a heading", "- not a bullet", "> not a quote", "---"):
        d.para(line)
    d.para("Literal *stars*, _under_, snake_case, [link](x), <b>tag</b>, `tick`, a|b, &amp;, back\\slash")
    assert convert(d, tmp_path) == (
        "1\\. Not a list\n\n\\# not a heading\n\n\\- not a bullet\n\n\\> not a quote\n\n\\---\n\n"
        "Literal \\*stars\\*, \\_under\\_, snake_case, \\[link\\](x), \\<b>tag\\</b>, \\`tick\\`, a\\|b, \\&amp;, "
        "back\\\\slash\n")
