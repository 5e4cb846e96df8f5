"""Word (.docx) to GitHub-flavoured Markdown: mammoth reads the document, markdownify writes the Markdown."""

from hone.docx.batch import Outcome, convert_paths
from hone.docx.convert import convert_file, docx_to_markdown

__all__ = ["Outcome", "convert_file", "convert_paths", "docx_to_markdown"]
