"""Loaders: every format, ids and titles, and failures that never sink the batch."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from groundgate.retrieval.documents import LoadFailure, SourceDocument
from groundgate.retrieval.loaders import load_path, load_records
from groundgate.retrieval.loaders_text import normalise_text


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF with one Helvetica text line per input line, built by hand."""
    objects: list[bytes] = [
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    ]
    page_ids: list[int] = []
    content_ids: list[int] = []
    for text in pages:
        ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
        for line in text.split("\n"):
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        content_ids.append(len(objects))
        objects.append(b"")  # the page, filled in once the Pages id is known
        page_ids.append(len(objects))
    objects.append(b"")
    pages_id = len(objects)
    for content_id, page_id in zip(content_ids, page_ids, strict=True):
        objects[page_id - 1] = (
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 1 0 R >> >> >>" % (pages_id, content_id)
        )
    kids = b" ".join(b"%d 0 R" % p for p in page_ids)
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    objects.append(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    catalog_id = len(objects)
    trailer = b"<< /Size %d /Root %d 0 R" % (len(objects) + 2, catalog_id)
    if title is not None:
        objects.append(b"<< /Title (%s) >>" % title.encode("latin-1"))
        trailer += b" /Info %d 0 R" % len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n%s >>\nstartxref\n%d\n%%%%EOF\n" % (trailer, xref)
    return bytes(out)


def by_id(docs: list[SourceDocument]) -> dict[str, SourceDocument]:
    return {doc.id: doc for doc in docs}


def reasons(failures: list[LoadFailure]) -> dict[str, str]:
    return {failure.path: failure.reason for failure in failures}


# --- folders, ids, ordering ----------------------------------------------------------------


def test_folder_is_walked_recursively_in_sorted_order_skipping_hidden_and_unsupported(
    tmp_path: Path,
) -> None:
    write(tmp_path, "z.txt", "Zed.")
    write(tmp_path, "a.txt", "Alpha.")
    write(tmp_path, "b/c.md", "# C\n\nSee.")
    write(tmp_path, "b/d/e.html", "<p>Deep.</p>")
    write(tmp_path, ".hidden.txt", "secret")
    write(tmp_path, ".git/HEAD.md", "# not a doc")
    write(tmp_path, "b/.cache/x.txt", "cached")
    write(tmp_path, "b/report.docx", b"PK\x03\x04 not supported")
    write(tmp_path, "image.png", b"\x89PNG\r\n\x1a\n\x00\x00")

    docs, failures = load_path(tmp_path)

    assert failures == []
    assert [d.id for d in docs] == ["a.txt", "b/c.md", "b/d/e.html", "z.txt"]
    assert [d.source for d in docs] == [d.id for d in docs]
    # Re-ingesting gives the same ids and texts: documents are replaced, not duplicated.
    again, _ = load_path(tmp_path)
    assert again == docs


def test_ids_are_relative_to_the_given_root(tmp_path: Path) -> None:
    write(tmp_path, "docs/guide/install.md", "# Install\n\nRun it.")
    docs, failures = load_path(tmp_path / "docs" / "guide", root=tmp_path)
    assert failures == []
    assert [d.id for d in docs] == ["docs/guide/install.md"]

    single, _ = load_path(tmp_path / "docs" / "guide" / "install.md")
    assert single[0].id == "install.md"  # a lone file: relative to its own folder


def test_missing_path_and_explicit_unsupported_file_are_failures(tmp_path: Path) -> None:
    docs, failures = load_path(tmp_path / "nope")
    assert docs == []
    assert failures[0].reason == "no such file or directory"

    write(tmp_path, "slides.pptx", b"binary")
    docs, failures = load_path(tmp_path / "slides.pptx")
    assert docs == []
    assert "unsupported file type" in failures[0].reason


def test_bad_files_fail_alone_and_the_batch_still_loads(tmp_path: Path) -> None:
    write(tmp_path, "good.txt", "Still here.")
    write(tmp_path, "binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(tmp_path, "latin1.txt", "café au lait".encode("latin-1"))
    write(tmp_path, "broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog")
    write(tmp_path, "broken.json", '{"text": "unterminated')
    write(tmp_path, "blank.md", "  \n\n\t\n")

    docs, failures = load_path(tmp_path)

    assert [d.id for d in docs] == ["good.txt"]
    got = reasons(failures)
    assert set(got) == {"binary.txt", "latin1.txt", "broken.pdf", "broken.json", "blank.md"}
    assert got["binary.txt"] == "binary content, not text"
    assert got["latin1.txt"].startswith("not UTF-8 text")
    assert got["broken.pdf"].startswith("not a valid PDF")
    assert got["broken.json"].startswith("invalid JSON")
    assert got["blank.md"] == "empty document"


def test_duplicate_ids_across_files_keep_the_first(tmp_path: Path) -> None:
    write(tmp_path, "a.json", json.dumps({"id": "doc-1", "text": "First."}))
    write(tmp_path, "b.jsonl", json.dumps({"_id": "doc-1", "text": "Second."}) + "\n")
    docs, failures = load_path(tmp_path)
    assert [(d.id, d.text) for d in docs] == [("doc-1", "First.")]
    assert failures == [LoadFailure("b.jsonl", "duplicate id 'doc-1' (a.json)")]


# --- text ----------------------------------------------------------------------------------


def test_text_is_normalised_and_titled_by_its_first_line(tmp_path: Path) -> None:
    raw = (
        "\ufeffShort Title\r\n\r\n\r\n\r\n"
        "Para   one\twith\u00a0spaces.  \r\nwrapped\n\n\n\nPara two.\n"
    )
    write(tmp_path, "notes.txt", raw.encode("utf-8"))
    (doc,), failures = load_path(tmp_path / "notes.txt")
    assert failures == []
    assert doc.text == "Short Title\n\nPara one with spaces.\nwrapped\n\nPara two."
    assert doc.title == "Short Title"
    assert doc.format == "text"
    assert doc.metadata == {}


def test_text_with_a_long_first_line_is_titled_by_its_file_stem(tmp_path: Path) -> None:
    write(tmp_path, "release-notes.txt", "word " * 40 + "\n\nMore.")
    (doc,), _ = load_path(tmp_path / "release-notes.txt")
    assert doc.title == "release-notes"


def test_normalise_keeps_markdown_code_fences_verbatim() -> None:
    text = "Some   text\n\n```py\ndef f():\n    x  =  1\n\n\n\n    return x\n```\n\n\n\nAfter"
    out = normalise_text(text, markdown=True)
    assert "    x  =  1\n\n\n\n    return x" in out  # code untouched
    assert out.startswith("Some text\n\n```py")
    assert out.endswith("```\n\nAfter")


# --- markdown ------------------------------------------------------------------------------


def test_markdown_keeps_headings_and_is_titled_by_its_first_h1(tmp_path: Path) -> None:
    md = (
        "## Preface\n\n```sh\n# Not a title\n```\n\n# Real   Title\n\nBody.\n\n"
        "- item one\n    - nested item\n"
    )
    write(tmp_path, "guide.MD", md)
    (doc,), failures = load_path(tmp_path)
    assert failures == []
    assert doc.format == "markdown"
    assert doc.title == "Real Title"
    assert doc.text.startswith("## Preface\n\n```sh\n# Not a title\n```\n\n# Real Title\n\nBody.")
    assert "\n    - nested item" in doc.text  # list indentation survives


def test_markdown_front_matter_becomes_title_and_metadata(tmp_path: Path) -> None:
    md = '---\ntitle: "Front Title"\nauthor: Ada\ntext: clash\n---\n# Heading\n\nBody text.\n'
    write(tmp_path, "post.markdown", md)
    (doc,), _ = load_path(tmp_path)
    assert doc.title == "Front Title"
    assert doc.metadata == {"author": "Ada", "text": "clash"}
    assert doc.text == "# Heading\n\nBody text."


def test_markdown_without_heading_falls_back_to_first_line(tmp_path: Path) -> None:
    write(tmp_path, "faq.md", "Frequently asked\n\nQ and A.")
    (doc,), _ = load_path(tmp_path)
    assert doc.title == "Frequently asked"


# --- html ----------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html><head><title> The  Page &amp; More </title><style>p { color: red }</style>
<script>var secret = "do not index";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<h1>Main <em>heading</em></h1>
<p>First   paragraph
   spans lines.</p>
<!-- a comment -->
<h2>Install</h2>
<ul><li>Step one.</li><li>Step two.</li></ul>
<pre>pip install  groundgate
  --upgrade</pre>
<noscript>enable js</noscript>
<p>Last<br>line.</p>
</body></html>"""


def test_html_becomes_markdown_without_page_furniture(tmp_path: Path) -> None:
    write(tmp_path, "site/index.htm", PAGE)
    (doc,), failures = load_path(tmp_path)
    assert failures == []
    assert doc.id == "site/index.htm"
    assert doc.title == "The Page & More"
    assert doc.format == "markdown"
    assert doc.text == (
        "# Main heading\n\n"
        "First paragraph spans lines.\n\n"
        "## Install\n\n"
        "- Step one.\n- Step two.\n\n"
        "```\npip install  groundgate\n  --upgrade\n```\n\n"
        "Last\nline."
    )
    for furniture in ("secret", "Home", "About", "color", "comment", "enable js"):
        assert furniture not in doc.text


def test_html_title_falls_back_to_the_first_h1(tmp_path: Path) -> None:
    write(tmp_path, "a.html", "<body><h2>Sub</h2><h1>Top</h1><p>x</p></body>")
    (doc,), _ = load_path(tmp_path)
    assert doc.title == "Top"


def test_deeply_nested_html_does_not_hit_the_recursion_limit(tmp_path: Path) -> None:
    write(tmp_path, "deep.html", "<div>" * 5000 + "<p>Bottom.</p>" + "</div>" * 5000)
    (doc,), failures = load_path(tmp_path)
    assert failures == []
    assert doc.text == "Bottom."


# --- pdf -----------------------------------------------------------------------------------


def test_pdf_pages_are_joined_with_blank_lines(tmp_path: Path) -> None:
    pdf = make_pdf(["Hello from page one.\nSecond line.", "Page two (text)."], title="Manual")
    write(tmp_path, "manual.pdf", pdf)
    (doc,), failures = load_path(tmp_path)
    assert failures == []
    assert doc.text == "Hello from page one.\nSecond line.\n\nPage two (text)."
    assert doc.title == "Manual"
    assert doc.metadata == {"pages": 2}
    assert doc.format == "text"


def test_pdf_without_metadata_title_uses_its_first_line(tmp_path: Path) -> None:
    write(tmp_path, "x.pdf", make_pdf(["Quarterly report\nNumbers went up."]))
    (doc,), _ = load_path(tmp_path)
    assert doc.title == "Quarterly report"


def test_corrupt_and_textless_pdfs_are_failures(tmp_path: Path) -> None:
    write(tmp_path, "corrupt.pdf", b"%PDF-1.7\n this is not really a pdf")
    write(tmp_path, "truncated.pdf", make_pdf(["Cut short."])[:60])
    write(tmp_path, "blank.pdf", make_pdf([""]))
    docs, failures = load_path(tmp_path)
    assert docs == []
    got = reasons(failures)
    assert got["corrupt.pdf"].startswith("not a valid PDF: ")
    assert got["truncated.pdf"].startswith("not a valid PDF: ")
    assert got["blank.pdf"].startswith("empty document")


def test_password_protected_pdf_fails_but_owner_only_protection_loads(tmp_path: Path) -> None:
    for name, password in (("locked.pdf", "secret"), ("owner-only.pdf", "")):
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Guarded text."]))))
        writer.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
        buffer = io.BytesIO()
        writer.write(buffer)
        write(tmp_path, name, buffer.getvalue())
    docs, failures = load_path(tmp_path)
    assert [(d.id, d.text) for d in docs] == [("owner-only.pdf", "Guarded text.")]
    assert failures == [LoadFailure("locked.pdf", "encrypted PDF")]


# --- json and jsonl ------------------------------------------------------------------------


def test_json_object_with_fields_and_metadata(tmp_path: Path) -> None:
    record = {
        "id": 42,
        "title": "  Answer ",
        "text": "The   answer is 42.",
        "metadata": {"lang": "en"},
        "url": "https://example.com/42",
    }
    write(tmp_path, "one.json", json.dumps(record))
    write(tmp_path, "noid.json", json.dumps({"text": "No id here."}))
    docs, failures = load_path(tmp_path)
    assert failures == []
    one = by_id(docs)["42"]
    assert one.text == "The answer is 42."
    assert one.title == "Answer"
    assert one.source == "one.json"
    assert one.metadata == {"lang": "en", "url": "https://example.com/42"}
    assert by_id(docs)["noid.json"].text == "No id here."


def test_json_list_items_fail_alone(tmp_path: Path) -> None:
    items = [{"text": "first"}, {"title": "no text"}, "not an object", {"id": "c", "text": "ok"}]
    write(tmp_path, "many.json", json.dumps(items))
    docs, failures = load_path(tmp_path)
    assert [d.id for d in docs] == ["many.json#0", "c"]
    assert reasons(failures) == {
        "many.json[1]": 'missing "text"',
        "many.json[2]": "not a JSON object",
    }


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[]", "no records"),
        ("42", "expected a JSON object or a list of objects"),
        ('{"text": 7}', '"text" must be a string'),
        ('{"text": "x", "metadata": [1]}', '"metadata" must be an object'),
        ('{"text": "x", "id": ["a"]}', '"id" must be a string or an integer'),
        ('{"text": "x", "format": "rst"}', '"format" must be one of text, markdown'),
        ('{"text": "   "}', "empty document"),
    ],
)
def test_invalid_json_documents(tmp_path: Path, content: str, reason: str) -> None:
    write(tmp_path, "bad.json", content)
    docs, failures = load_path(tmp_path)
    assert docs == []
    assert failures == [LoadFailure("bad.json", reason)]


def test_beir_corpus_jsonl_with_one_bad_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"_id": "d1", "title": "Paris", "text": "Paris is in France.", "metadata": {}}),
        '{"_id": "d2", "text": "unterminated',
        json.dumps({"title": "no id", "text": "Orphan text."}),
        json.dumps({"_id": "d4", "title": "Missing text"}),
        "",
        json.dumps({"_id": "d6", "title": "", "text": "Berlin is in Germany."}),
    ]
    data = ("\n".join(lines) + "\n").encode() + b'{"_id": "d8", "text": "caf\xe9"}\n'
    write(tmp_path, "beir/corpus.jsonl", data)
    docs, failures = load_path(tmp_path / "beir")

    assert [(d.id, d.title, d.text) for d in docs] == [
        ("d1", "Paris", "Paris is in France."),
        ("corpus.jsonl#3", "no id", "Orphan text."),
        ("d6", "", "Berlin is in Germany."),
    ]
    assert all(d.source == "corpus.jsonl" for d in docs)
    got = reasons(failures)
    assert set(got) == {"corpus.jsonl:2", "corpus.jsonl:4", "corpus.jsonl:7"}
    assert got["corpus.jsonl:2"].startswith("invalid JSON")
    assert got["corpus.jsonl:4"] == 'missing "text"'
    assert got["corpus.jsonl:7"].startswith("not UTF-8 text")


def test_empty_jsonl_is_a_failure(tmp_path: Path) -> None:
    write(tmp_path, "empty.jsonl", "\n\n")
    assert load_path(tmp_path) == ([], [LoadFailure("empty.jsonl", "no records")])


# --- records from API callers --------------------------------------------------------------


def test_load_records_validates_like_jsonl_lines() -> None:
    records: list[object] = [
        {"id": "a", "text": "# Title\n\nBody   text.", "format": "markdown", "source": "kb/a"},
        {"title": "missing"},
        {"text": "No id, so a content hash."},
        ["not", "a", "dict"],
    ]
    docs, failures = load_records(records)
    assert len(docs) == 2
    assert docs[0].id == "a"
    assert docs[0].format == "markdown"
    assert docs[0].source == "kb/a"
    assert docs[0].text == "# Title\n\nBody text."
    assert docs[1].id.startswith("doc-")
    assert failures == [
        LoadFailure("records[1]", 'missing "text"'),
        LoadFailure("records[3]", "not a JSON object"),
    ]


def test_load_records_content_ids_are_stable_and_duplicates_reported() -> None:
    first, _ = load_records([{"text": "Same text."}])
    second, _ = load_records([{"text": "Same  text."}])  # same after normalisation
    other, _ = load_records([{"text": "Other text."}])
    assert first[0].id == second[0].id != other[0].id

    docs, failures = load_records(
        [{"id": "x", "text": "one"}, {"id": "x", "text": "two"}], source="upload"
    )
    assert [d.text for d in docs] == ["one"]
    assert len(failures) == 1
    assert failures[0].path == "upload"
    assert "duplicate id 'x'" in failures[0].reason
