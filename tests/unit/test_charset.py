"""Charset decoding: declarations are trusted only when the bytes agree; binary payloads are recognised."""

import gzip
import io
import struct
import zlib

from filters.charset import decode_html, declared_charsets, is_binary

GERMAN = "<html><body><p>Grüße aus München, die Straße ist schön.</p></body></html>"
RUSSIAN = "<html><body><p>Съешь же ещё этих мягких французских булок, да выпей чаю. Это предложение на русском языке.</p></body></html>"


def test_utf8_page_declared_latin1_decodes_as_utf8():
    raw = GERMAN.replace("<html>", '<html><meta charset="iso-8859-1">').encode("utf-8")
    text, encoding = decode_html(raw)
    assert "Grüße aus München" in text
    assert encoding == "utf-8"


def test_cp1252_page_declared_utf8_falls_back_to_detection():
    raw = GERMAN.replace("<html>", '<html><meta charset="utf-8">').encode("cp1252")
    text, _ = decode_html(raw)
    assert "Grüße aus München" in text


def test_http_header_declaration_is_used_when_the_bytes_fit():
    raw = RUSSIAN.encode("koi8-r")
    text, encoding = decode_html(raw, "text/html; charset=KOI8-R")
    assert "французских булок" in text
    assert encoding == "koi8-r"


def test_meta_declaration_without_header():
    raw = RUSSIAN.replace("<html>", "<html><meta http-equiv='Content-Type' content='text/html; charset=windows-1251'>").encode("cp1251")
    text, _ = decode_html(raw)
    assert "французских булок" in text


def test_undeclared_legacy_encoding_is_detected():
    text, _ = decode_html((RUSSIAN * 3).encode("cp1251"))
    assert "французских булок" in text


def test_unknown_declared_charset_is_ignored():
    raw = GERMAN.replace("<html>", '<html><meta charset="no-such-charset">').encode("utf-8")
    assert declared_charsets(raw) == []
    assert "Grüße" in decode_html(raw)[0]


def test_bom_wins():
    text, encoding = decode_html(GERMAN.encode("utf-16"))
    assert "Grüße aus München" in text
    assert encoding == "utf-16"


def test_undecodable_bytes_never_raise():
    raw = b"<html><body>" + bytes(range(128, 256)) * 20 + b"</body></html>"
    text, _ = decode_html(raw)
    assert text.startswith("<html><body>")


def _png() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00")) + chunk(b"IEND", b"")


def test_binary_payloads_are_recognised():
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(range(256)) * 4
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as g:
        g.write(GERMAN.encode() * 50)
    for payload in (pdf, _png(), buf.getvalue(), bytes(range(256)) * 16):
        assert is_binary(payload, "text/html"), payload[:8]


def test_declared_non_text_type_is_binary_even_if_it_looks_like_text():
    assert is_binary(b"<html><body>hello</body></html>", "application/pdf")


def test_html_is_not_binary():
    assert not is_binary(GERMAN.encode("utf-8"), "text/html; charset=utf-8")
    assert not is_binary(GERMAN.encode("utf-16"), None)
    assert not is_binary((RUSSIAN * 3).encode("cp1251"), None)


def test_mostly_utf8_page_with_a_broken_sequence_stays_utf8():
    raw = GERMAN.replace("<html>", '<html><meta charset="iso-8859-1">').encode("utf-8") * 5
    raw = raw.replace(b"</p>", b"\xff</p>", 1)
    text, encoding = decode_html(raw)
    assert encoding == "utf-8"
    assert text.count("Grüße aus München") == 5 and "Ã" not in text


def test_single_byte_page_is_not_taken_for_broken_utf8():
    raw = ("<html><body>" + "Die Straße in München ist schön, sagt der Bürgermeister. " * 12 + "</body></html>").encode("cp1252")
    text, encoding = decode_html(raw, "text/html; charset=utf-8")
    assert encoding == "cp1252" and "Die Straße in München ist schön" in text
