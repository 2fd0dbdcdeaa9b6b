"""Build the quickstart corpus: a WARC of web pages we wrote, plus the quickstart's own benchmark file.

    python scripts/make_quickstart_corpus.py configs/quickstart

Deterministic (fixed dates and record ids), so the committed files can be checked against it.
Each page wraps its text in realistic boilerplate (navigation, cookie banner, sidebar, footer)
so extraction has something to remove.
"""

from __future__ import annotations

import html
import io
import json
import sys
import uuid
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

sys.path.insert(0, str(Path(__file__).parent))
import quickstart_texts as texts  # noqa: E402

DATE = "2026-01-15T10:00:00Z"


def page(site: str, title: str, body: str, lang: str = "en") -> str:
    paragraphs = "\n".join(f"<p>{html.escape(p.strip())}</p>" for p in body.strip().split("\n\n") if p.strip())
    nav = "".join(f'<li><a href="/{x.lower()}">{x}</a></li>' for x in ["Home", "Topics", "Newsletter", "About", "Contact"])
    related = "".join(f'<li><a href="/r/{i}">Related story number {i}</a></li>' for i in range(1, 6))
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{html.escape(title)} | {site}</title>
<script>window.analytics = window.analytics || []; analytics.push(["pageview"]);</script></head>
<body>
<div class="cookie-banner">We use cookies to improve your experience. By continuing you accept our cookie policy. <button>Accept</button></div>
<header><div class="logo">{site}</div><nav><ul>{nav}</ul></nav></header>
<main><article><h1>{html.escape(title)}</h1><div class="byline">Posted in Guides</div>
{paragraphs}
</article></main>
<aside><h3>Related</h3><ul>{related}</ul><div class="ad">Advertisement</div></aside>
<footer><p>Copyright 2026 {site}. All rights reserved.</p><p><a href="/privacy">Privacy policy</a> | <a href="/terms">Terms of use</a></p></footer>
</body></html>"""


def pages():
    for slug, (title, body) in texts.ARTICLES.items():
        yield f"https://www.everyday-science.example/{slug}", page("Everyday Science", title, body), "utf-8"
    for slug, (site, edits) in texts.SYNDICATED.items():
        title, body = texts.ARTICLES[slug]
        for old, new in edits:
            body = body.replace(old, new)
        yield f"https://{site}/repost/{slug}", page(site, title, body), "utf-8"
    for slug, (title, body) in texts.SPAM.items():
        yield f"https://deals-and-more.example/{slug}", page("Deals and More", title, body), "utf-8"
    for slug, (lang, title, body) in texts.OTHER_LANGUAGES.items():
        yield f"https://blog-{lang}.example/{slug}", page(f"Blog {lang}", title, body, lang), "utf-8"
    title, body = texts.PII_PAGE
    yield "https://elmstreet-garden.example/contact", page("Elm Street Garden", title, body), "utf-8"
    title, body = texts.PLANTED
    yield "https://study-group.example/week-12", page("Study Group", title, body), "utf-8"
    latin1_title, latin1_body = texts.ARTICLES["tides"]
    yield ("https://old-site.example/tides-latin1",
           page("Old Site", latin1_title + " (archive)", latin1_body.replace("metres", "mètres")), "latin-1")
    yield "https://empty.example/", "", "utf-8"


def warc_bytes() -> bytes:
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    for i, (url, body, encoding) in enumerate(pages()):
        payload = body.encode(encoding)
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                           ("Content-Length", str(len(payload)))], protocol="HTTP/1.1")
        record = writer.create_warc_record(
            url, "response", payload=io.BytesIO(payload), http_headers=http,
            warc_headers_dict={"WARC-Date": DATE, "WARC-Record-ID": f"<urn:uuid:{uuid.UUID(int=i + 1)}>"},
        )
        writer.write_record(record)
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(image)))],
                            protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record(
        "https://broken-cdn.example/logo", "response", payload=io.BytesIO(image), http_headers=http,
        warc_headers_dict={"WARC-Date": DATE, "WARC-Record-ID": f"<urn:uuid:{uuid.UUID(int=999)}>"}))
    return buf.getvalue()


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "crawl.warc.gz").write_bytes(warc_bytes())
    with open(out / "benchmark.jsonl", "w") as f:
        for i, item in enumerate(texts.BENCHMARK):
            f.write(json.dumps({"id": f"qs-math-{i}", **item}) + "\n")
    print(f"wrote {out / 'crawl.warc.gz'} and {out / 'benchmark.jsonl'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "configs/quickstart")
