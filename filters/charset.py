"""Turning raw page bytes into text, and recognising bytes that are not a page at all.

Web pages lie about their encoding often enough to matter: a page declared ISO-8859-1 that is
really UTF-8, or declared UTF-8 but saved as Windows-1252. So a declaration is only trusted
when the bytes decode cleanly under it, UTF-8 is tried first (a non-ASCII byte sequence that
happens to be valid UTF-8 by accident is vanishingly rare), and when nothing declared fits,
resiliparse's detector (uchardet) decides. A page that is UTF-8 except for a few broken
sequences stays UTF-8 rather than being read as Windows-1252 mojibake. Encoding names go through the WHATWG mapping
browsers use, so `latin1` decodes as Windows-1252 just as a browser would render it.
"""

from __future__ import annotations

import codecs
import re

from resiliparse.parse.encoding import bytes_to_str, detect_encoding, detect_mime, map_encoding_to_html5

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]{0,300}?charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)
META_SCAN_BYTES = 8192
TEXT_MIME_PREFIXES = ("text/", "application/xhtml", "application/xml")
SNIFF_BYTES = 4096
# A page whose non-ASCII bytes are almost all valid UTF-8 is UTF-8 with a few broken sequences,
# whatever it declares: in a single-byte encoding nearly every accented letter breaks UTF-8.
MAX_BAD_UTF8_SHARE = 0.05
_ASCII = bytes(range(128))
MAX_CONTROL_SHARE = 0.05
TEXT_MIME_PREFIXES_SNIFFED = TEXT_MIME_PREFIXES + ("application/json", "application/octet-stream")
# C0 controls that never occur in text (tab, newlines, form feed and ESC, used by ISO-2022, do).
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0c\x1b")


def declared_charsets(raw: bytes, content_type: str | None = None) -> list[str]:
    """Charsets the page declares, HTTP header first (it wins in browsers), then `<meta>`."""
    found = []
    if content_type and (m := _HEADER_CHARSET.search(content_type)):
        found.append(m.group(1))
    if m := _META_CHARSET.search(raw[:META_SCAN_BYTES]):
        found.append(m.group(1).decode("ascii", "ignore"))
    return [enc for name in found if (enc := map_encoding_to_html5(name, fallback_utf8=False))]


def decode_html(raw: bytes, content_type: str | None = None) -> tuple[str, str]:
    """(text, encoding used). Never raises on bad bytes: the last resort decodes with replacement."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return raw.decode(encoding, errors="replace"), encoding
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
    high_bytes = len(raw.translate(None, _ASCII))
    if text.count("\ufffd") <= MAX_BAD_UTF8_SHARE * high_bytes:
        return text, "utf-8"  # UTF-8 with a few broken sequences (a truncated page, a pasted snippet)
    for encoding in declared_charsets(raw, content_type):
        try:
            return raw.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError):
            continue
    encoding = detect_encoding(raw)
    return bytes_to_str(raw, encoding, errors="replace"), encoding


def is_binary(raw: bytes, content_type: str | None = None) -> bool:
    """True for payloads that are not text: PDFs, images, archives, or bytes full of control codes.

    A declared non-text type counts too, so a PDF served with a `text/html` header is still caught
    by its magic bytes, and a page served as `application/pdf` is not parsed as HTML. High bytes
    are not counted against a page: they are most of a Russian or Chinese page's bytes.
    """
    if any(raw.startswith(bom) for bom, _ in _BOMS):
        return False
    if content_type:
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime and not mime.startswith(TEXT_MIME_PREFIXES):
            return True
    head = raw[:SNIFF_BYTES]
    if not detect_mime(head).startswith(TEXT_MIME_PREFIXES_SNIFFED):
        return True  # a binary magic number matched
    control = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return control > MAX_CONTROL_SHARE * len(head)
