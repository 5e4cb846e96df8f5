"""`hone docx` on many inputs: folders, bad files (one line each, the rest still converted), overwriting."""

from __future__ import annotations

import copy
import io
import zipfile
from pathlib import Path

import olefile
import pytest
from docx_samples import Doc, encrypted_docx, ole_file, png_bytes
from typer.testing import CliRunner

from hone.cli import app


def hone_docx(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["docx", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def simple_doc(path: Path, text: str, image: bool = False) -> Path:
    d = Doc()
    d.heading(text, 1)
    d.para(f"About {text}.")
    if image:
        d.image(png_bytes(), f"{text} picture")
    return d.save(path)


def rewritten(source: Path, member: str, new: bytes) -> bytes:
    """`source` with one zip member replaced: a valid zip holding a broken Word part."""
    out = io.BytesIO()
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(copy.copy(info), new if info.filename == member else zin.read(info.filename))
    return out.getvalue()


@pytest.fixture
def bad_files(tmp_path) -> dict[str, tuple[Path, str]]:
    """Each bad input next to the reason its line must give."""
    bad = tmp_path / "bad"
    bad.mkdir()
    good = simple_doc(tmp_path / "plain.docx", "Plain")
    files = {
        "not_zip.docx": (b"Just some text that was renamed.\n", "not a zip archive"),
        "truncated.docx": (good.read_bytes()[:1500], "truncated or corrupt"),
        "empty.docx": (b"", "empty file"),
        "old_format.docx": (ole_file({"WordDocument": b"\xec\xa5\xc1\x00" + b"\0" * 600}), "old binary Word format"),
        "legacy.doc": (ole_file({"WordDocument": b"\xec\xa5\xc1\x00"}), "old binary Word format (.doc)"),
        "broken_xml.docx": (rewritten(good, "word/document.xml", b"<w:document><w:body>"), "corrupt .docx"),
        "sheet.docx": (_zip({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"}),
                       "not a Word document"),
        "notes.txt": (b"plain text", "not a .docx file name"),
    }
    out = {}
    for name, (data, reason) in files.items():
        (bad / name).write_bytes(data)
        out[name] = (bad / name, reason)
    encrypted = encrypted_docx(good, bad / "locked.docx")
    out["locked.docx"] = (encrypted, "encrypted (password-protected)")
    return out


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def test_bad_inputs_one_line_each_others_converted_summary_and_nonzero_exit(tmp_path, bad_files):
    assert "EncryptedPackage" in {e[0] for e in olefile.OleFileIO(str(bad_files["locked.docx"][0])).listdir()}
    good_a = simple_doc(tmp_path / "a.docx", "Alpha")
    good_b = simple_doc(tmp_path / "b.docx", "Beta", image=True)
    bad_paths = [path for path, _ in bad_files.values()]
    code, stdout, stderr = hone_docx(good_a, *bad_paths, good_b, "-o", tmp_path / "out")

    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == len(bad_files) + 1  # one line per bad file, then the summary
    for path, reason in bad_files.values():
        [line] = [line for line in lines if line.startswith(f"{path}: ")]
        assert reason in line, line
    assert lines[-1] == f"converted 2 of {len(bad_files) + 2} documents; {len(bad_files)} failed"
    assert "Traceback" not in stderr

    assert (tmp_path / "out/a.md").read_text() == "# Alpha\n\nAbout Alpha.\n"
    assert (tmp_path / "out/b.md").read_text() == "# Beta\n\nAbout Beta.\n\n![Beta picture](assets/b/image1.png)\n"
    assert f"{good_b} -> {tmp_path / 'out/b.md'} (1 picture)" in stdout
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["a.md", "assets/b/image1.png", "b.md"]  # nothing at all for a bad file, no temp files


def test_folder_of_documents_recursively_in_one_call(tmp_path):
    docs = tmp_path / "docs"
    (docs / "specs").mkdir(parents=True)
    simple_doc(docs / "plan.docx", "Plan")
    simple_doc(docs / "specs" / "api.docx", "API", image=True)
    simple_doc(docs / "specs" / "cli.docx", "CLI")
    (docs / "specs" / "~$api.docx").write_bytes(b"\x05owner")  # Word's lock file of an open document: skipped
    (docs / "README.txt").write_text("not a document")  # only .docx files are taken from a folder

    code, stdout, stderr = hone_docx(docs, "-o", tmp_path / "md")
    assert (code, stderr) == (0, "")
    assert stdout.splitlines()[-1] == "converted 3 of 3 documents"
    assert (tmp_path / "md/plan.md").read_text() == "# Plan\n\nAbout Plan.\n"
    assert (tmp_path / "md/specs/cli.md").read_text() == "# CLI\n\nAbout CLI.\n"
    assert (tmp_path / "md/specs/api.md").read_text().endswith("![API picture](assets/api/image1.png)\n")
    assert (tmp_path / "md/specs/assets/api/image1.png").read_bytes() == png_bytes()


def test_default_output_sits_beside_each_document_and_assets_option(tmp_path):
    source = simple_doc(tmp_path / "notes.docx", "Notes", image=True)
    code, _, stderr = hone_docx(source, "--assets", tmp_path / "pics")
    assert (code, stderr) == (0, "")
    assert (tmp_path / "notes.md").read_text().endswith("![Notes picture](pics/notes/image1.png)\n")
    assert (tmp_path / "pics/notes/image1.png").exists()


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    source = simple_doc(tmp_path / "a.docx", "Alpha")
    (tmp_path / "a.md").write_text("my own notes\n")
    code, _, stderr = hone_docx(source)
    assert code == 1
    assert f"{source}: {tmp_path / 'a.md'} exists (use --overwrite to replace it)" in stderr
    assert (tmp_path / "a.md").read_text() == "my own notes\n"
    code, _, _ = hone_docx(source, "--overwrite")
    assert code == 0
    assert (tmp_path / "a.md").read_text() == "# Alpha\n\nAbout Alpha.\n"


def test_missing_input_empty_folder_and_two_inputs_writing_one_output(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    first = simple_doc(tmp_path / "x" / "same.docx", "X")
    second = simple_doc(tmp_path / "y" / "same.docx", "Y")
    code, _, stderr = hone_docx(tmp_path / "missing.docx", tmp_path / "empty", first, second, "-o", tmp_path / "o")
    assert code == 1
    assert f"{tmp_path / 'missing.docx'}: no such file or folder" in stderr
    assert f"{tmp_path / 'empty'}: no .docx file in this folder" in stderr
    assert f"{second}: " in stderr and f"is also the output of {first} in this run" in stderr
    assert (tmp_path / "o/same.md").read_text() == "# X\n\nAbout X.\n"


def test_picture_missing_from_the_archive_is_a_warning_not_a_failure(tmp_path):
    d = Doc()
    d.para("Chart:")
    d.image(png_bytes(), "Chart")
    full = d.save(tmp_path / "full.docx")
    with zipfile.ZipFile(full) as zin, zipfile.ZipFile(tmp_path / "holed.docx", "w") as zout:
        for info in zin.infolist():
            if not info.filename.startswith("word/media/"):
                zout.writestr(copy.copy(info), zin.read(info.filename))
    code, _, stderr = hone_docx(tmp_path / "holed.docx")
    assert code == 0
    assert stderr.startswith(f"{tmp_path / 'holed.docx'}: warning: missing picture skipped")
    assert (tmp_path / "holed.md").read_text() == "Chart:\n"
