"""`hone docx` side by side with pandoc (`pandoc -t gfm`), the reference converter for Word to Markdown.

1. A test document holding every feature Hone promises (built with python-docx by tests/docx_samples.py): for
   each feature, whether pandoc's Markdown keeps it and whether Hone's does.
2. The real documents in shared/data/docx: the outline (headings and tables, in order) of each converter's
   output against pandoc's, the share of pandoc's words each one keeps, and the time taken. The naive
   `*.theirs.md` conversions beside them are scored the same way.

Writes JSON and prints Markdown tables. tests/test_docx_pandoc.py asserts on the same functions.

    .venv/bin/python benchmarks/docx_vs_pandoc.py [-o benchmarks/out/docx_vs_pandoc.json]

Inputs: ../shared/data/docx (the project's shared documents beside the checkout) and `pandoc` on PATH.
The README quotes no figure from it.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the document builder the tests use

from docx_samples import Doc, png_bytes  # noqa: E402

from hone.docx import convert_file  # noqa: E402


def feature_document(path: Path) -> Path:
    """One document with every feature, each carrying text the checks below look for."""
    d = Doc()
    d.heading("Release Plan", 0)
    for level in range(1, 7):
        d.heading(f"Level {level}", level)
    d.para("Plain, ", ("bold", {"bold": True}), ", ", ("italic", {"italic": True}), ", ", ("gone", {"strike": True}),
           ", ", ("pip install hone", {"font": "Courier New"}), " and ", ("x = 1", {"style": "Verbatim Char"}), ".")
    p = d.para("Read ")
    d.hyperlink(p, "the guide", "https://example.com/guide?a=1&b=2")
    d.run(p, ".")
    d.footnote(p, "On held-out items.")
    d.para(("first line", {"break_after": True}), "second line")
    d.list_items([(0, "fruit"), (1, "apple"), (2, "green"), (0, "bread")], ordered=False)
    d.list_items([(0, "mix"), (1, "stir well"), (0, "bake")], ordered=True)
    d.para("Before the table.")
    t = d.table([["Name", "Value", "Note"], ["a|b", "1", "line1\nline2"], ["WIDE-CELL", "", "TALL-CELL"],
                 ["m2", "y", ""]])
    t.cell(2, 0).merge(t.cell(2, 1))
    t.cell(2, 2).merge(t.cell(3, 2))
    d.para("After the table.")
    d.image(png_bytes(), "Red square")
    d.para(("pip install hone", {"font": "Consolas"}))
    d.para(("hone docx a.docx", {"font": "Consolas"}))
    p = d.para("See ")
    d.hyperlink(p, "Setup", anchor="_Toc1")
    d.bookmark(d.heading("Setup & Install", 1), "_Toc1")
    for line in ("1. Not a list", "# not a heading", "- not a bullet", "---"):
        d.para(line)
    return d.save(path)


def _has(pattern: str):
    return lambda md, folder: re.search(pattern, md, re.M) is not None


def _image_kept(md: str, folder: Path) -> bool:
    m = re.search(r'!\[Red square\]\(([^)\s]+)\)|<img src="([^"]+)"[^>]*alt="Red square"', md)
    return m is not None and (folder / (m.group(1) or m.group(2)).replace("%20", " ")).is_file()


def _in_order(*texts: str):
    def check(md: str, folder: Path) -> bool:
        positions = [md.find(t) for t in texts]
        return -1 not in positions and positions == sorted(positions)
    return check


FEATURES = {
    "Title": _has(r"^# Release Plan$"),
    **{f"Heading {n}": _has(rf"^{'#' * n} Level {n}$") for n in range(1, 7)},
    "bold": _has(r"\*\*bold\*\*"),
    "italic": _has(r"(?<!\*)\*italic\*(?!\*)|_italic_"),
    "strikethrough": _has(r"~~gone~~"),
    "inline code (code style)": _has(r"`x = 1`"),
    "inline code (monospace font)": _has(r"`pip install hone`"),
    "hyperlink": _has(r"\[the guide\]\(https://example\.com/guide\?a=1&b=2\)"),
    "hard line break": _has(r"first line(\\|  )\nsecond line"),
    "nested bullets": lambda md, f: all(re.search(p, md, re.M) for p in
                                        (r"^[-*+] +fruit", r"^ {2,}[-*+] +apple", r"^ {4,}[-*+] +green")),
    "nested numbers": lambda md, f: all(re.search(p, md, re.M) for p in (r"^1\. +mix", r"^ {3,}1\. +stir well")),
    "table between the paragraphs": _in_order("Before the table.", "Name", "WIDE-CELL", "After the table."),
    "table header row": _has(r"^\| *Name *\| *Value *\| *Note *\|\n\|[ :|-]+\|$|<th>Name</th>"),
    "`|` in a cell": _has(r"\| *a\\\|b *\||<td>a\|b</td>"),
    "merged cells written once": lambda md, f: md.count("WIDE-CELL") == 1 and md.count("TALL-CELL") == 1,
    "line break in a cell": _has(r"line1<br ?/?>\s*line2"),
    "image file + relative link + alt": _image_kept,
    "footnote": lambda md, f: bool(re.search(r"\[\^1\]", md) and re.search(r"^\[\^1\]: +On held-out", md, re.M)),
    "code block (monospace paragraphs)": _has(r"^```\npip install hone\nhone docx a\.docx\n```$"),
    "link to a heading works on GitHub": _has(r"\[Setup\]\(#setup--install\)"),
    "literal `1.`/`#`/`-`/`---` stay text": lambda md, f: all(re.search(p, md, re.M) for p in (
        r"^1\\\. Not a list$", r"^\\# not a heading$", r"^\\- not a bullet$", r"^\\-+$")),
}


def pandoc(source: Path, out_md: Path) -> None:
    out_md.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pandoc", "-t", "gfm", "--wrap=none", f"--extract-media={out_md.parent / 'media'}",
                    str(source), "-o", str(out_md)], check=True, capture_output=True)


def hone(source: Path, out_md: Path) -> None:
    convert_file(source, out_md, out_md.parent / "assets" / source.stem, overwrite=True)


def compare_features(workdir: Path) -> dict[str, dict[str, bool]]:
    workdir.mkdir(parents=True, exist_ok=True)
    source = feature_document(workdir / "features.docx")
    results = {}
    for name, convert in (("pandoc", pandoc), ("hone", hone)):
        md_path = workdir / name / "features.md"
        convert(source, md_path)
        md = md_path.read_text(encoding="utf-8")
        results[name] = {feature: check(md, md_path.parent) for feature, check in FEATURES.items()}
    return results


def _plain(md: str) -> str:
    """Markdown reduced to its words' spelling: markup and escapes gone."""
    return re.sub(r"\\(.)", r"\1", md.replace("**", ""))


def outline(md: str) -> list[str]:
    """Headings and tables (by their header row), in order: where each thing stands in the document."""
    items = []
    lines = md.splitlines()
    for i, line in enumerate(lines):
        heading = re.match(r"^(?:[-*+] +)?(#{1,6}) +(.*\S)", line)
        if heading:
            items.append(f"h{len(heading.group(1))} " + " ".join(_plain(heading.group(2)).split()))
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[ :|-]+\|$", lines[i + 1]):
            cells = [" ".join(_plain(c).split()) for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            items.append("table " + " | ".join(cells))
    return items


def word_share(md: str, reference: str) -> float:
    """Share of the reference's words (with repeats) that `md` also holds."""
    words, ref = (Counter(re.findall(r"\w+", _plain(text).lower())) for text in (md, reference))
    total = sum(ref.values())
    return sum(min(n, words[w]) for w, n in ref.items()) / total if total else 1.0


def compare_real(data_dir: Path, workdir: Path) -> dict[str, dict]:
    results = {}
    for source in sorted(data_dir.glob("*.docx")):
        outputs, seconds = {}, {}
        for name, convert in (("pandoc", pandoc), ("hone", hone)):
            md_path = workdir / name / f"{source.stem}.md"
            start = time.perf_counter()
            convert(source, md_path)
            seconds[name] = round(time.perf_counter() - start, 3)
            outputs[name] = md_path.read_text(encoding="utf-8")
        theirs = source.with_name(f"{source.stem}.theirs.md")
        if theirs.exists():
            outputs["theirs"] = theirs.read_text(encoding="utf-8")
        reference = outline(outputs["pandoc"])
        results[source.name] = {
            name: {"outline_items": len(outline(md)),
                   "outline_same_as_pandoc": outline(md) == reference,
                   "outline_similarity": round(difflib.SequenceMatcher(None, outline(md), reference).ratio(), 3),
                   "tables": sum(1 for item in outline(md) if item.startswith("table ")),
                   "share_of_pandoc_words": round(word_share(md, outputs["pandoc"]), 4),
                   "seconds": seconds.get(name)}
            for name, md in outputs.items()}
    return results


def shared_data() -> Path:
    env = os.environ.get("HONE_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--out", type=Path, default=REPO / "benchmarks/out/docx_vs_pandoc.json")
    args = ap.parse_args()
    if shutil.which("pandoc") is None:
        sys.exit("pandoc not found: apt-get install pandoc")
    version = subprocess.run(["pandoc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    with tempfile.TemporaryDirectory() as tmp:
        features = compare_features(Path(tmp) / "features")
        real = compare_real(shared_data() / "docx", Path(tmp) / "real")
    print(f"Features of the test document ({version} -t gfm vs hone docx):\n")
    print("| feature | pandoc | hone |\n| --- | --- | --- |")
    for feature in FEATURES:
        print(f"| {feature} | {'yes' if features['pandoc'][feature] else 'no'} | "
              f"{'yes' if features['hone'][feature] else 'no'} |")
    print("\nReal documents (outline = headings and tables in order; words = share of pandoc's words kept):\n")
    print("| document | converter | outline items | same outline as pandoc | similarity | tables | words | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for doc, by_converter in real.items():
        for name, r in by_converter.items():
            print(f"| {doc} | {name} | {r['outline_items']} | {r['outline_same_as_pandoc']} | "
                  f"{r['outline_similarity']} | {r['tables']} | {r['share_of_pandoc_words']} | {r['seconds'] or '-'} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"pandoc": version, "features": features, "real": real}, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
