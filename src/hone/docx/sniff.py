"""Say in one line why a file is not a Word document we can read, before any converter sees it.

Word's own failures are recognisable by their bytes: an encrypted .docx and an old .doc are both OLE compound
files (told apart by their streams, read with olefile), a truncated .docx is a zip without its central
directory, a renamed file is no zip at all.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from hone.errors import HoneError

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_WORD_MAIN_PART = re.compile(rb"(wordprocessingml|ms-word)\.(document|template)[\w.]*\.main\+xml", re.IGNORECASE)


def read_docx_bytes(path: Path) -> bytes:
    """The bytes of a readable .docx, or a HoneError saying (without the path) what the file is instead."""
    if path.suffix.lower() != ".docx":
        if path.suffix.lower() == ".doc":
            raise HoneError("old binary Word format (.doc) is not supported: "
                            "open it in Word or LibreOffice and save it as .docx")
        raise HoneError("not a .docx file name (expected a name ending in .docx)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise HoneError(f"cannot read the file ({e.strerror or e})") from None
    if not data:
        raise HoneError("empty file (0 bytes)")
    if data.startswith(_OLE_MAGIC):
        raise HoneError(_describe_ole(data))
    if not zipfile.is_zipfile(io.BytesIO(data)):
        if data.startswith(_ZIP_MAGIC):
            raise HoneError("truncated or corrupt .docx (the zip archive has no central directory)")
        raise HoneError("not a .docx (not a zip archive; is it another format renamed?)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            broken = archive.testzip()
            names = set(archive.namelist())
            content_types = archive.read("[Content_Types].xml") if "[Content_Types].xml" in names else b""
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError) as e:
        raise HoneError(f"corrupt .docx ({e})") from None
    if broken is not None:
        raise HoneError(f"corrupt .docx (damaged member {broken} in the zip archive)")
    if not _WORD_MAIN_PART.search(content_types):
        raise HoneError("not a Word document (a zip archive without a Word main document part)")
    return data


def _describe_ole(data: bytes) -> str:
    import olefile

    try:
        with olefile.OleFileIO(data) as ole:
            streams = {"/".join(entry) for entry in ole.listdir()}
    except (OSError, olefile.olefile.NotOleFileError) as e:
        return f"corrupt OLE compound file ({e})"
    if "EncryptedPackage" in streams:
        return "encrypted (password-protected) document: remove the password in Word and save again"
    if "WordDocument" in streams:
        return "old binary Word format (.doc) saved under a .docx name: save it as .docx in Word or LibreOffice"
    return "an OLE compound file (an older Office format), not a .docx"
