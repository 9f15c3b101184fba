"""The chunker: structure, caps, overlap, splitting, stability."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from groundgate.retrieval.chunking import chunk_document, estimate_tokens, sentence_spans
from groundgate.retrieval.documents import ChunkDraft, ChunkingConfig, SourceDocument
from groundgate.retrieval.loaders import load_path


def words(text: str) -> int:
    """A predictable counter for tests: whitespace-separated words."""
    return len(text.split())


def md(text: str) -> SourceDocument:
    return SourceDocument(id="doc", text=text, format="markdown")


def plain(text: str) -> SourceDocument:
    return SourceDocument(id="doc", text=text)


def facts(first: int, count: int) -> str:
    """Sentences of exactly four words each, numbered so every one is distinct."""
    return " ".join(f"Fact {i} is here." for i in range(first, first + count))


def assert_well_formed(
    doc: SourceDocument, chunks: list[ChunkDraft], count: Callable[[str], int] = words
) -> None:
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.start_char : chunk.end_char]
        assert chunk.text == chunk.text.strip()
        assert chunk.token_count == count(chunk.text)


# --- structure -----------------------------------------------------------------------------

GUIDE = """Preamble before any heading.

# Groundgate

Intro paragraph.

## Install

Use pip.

### From source

Clone the repo.

## Configure ##

Edit the file.

# Appendix

Last words."""


def test_sections_carry_their_heading_path_and_never_merge() -> None:
    doc = md(GUIDE)
    chunks = chunk_document(doc, ChunkingConfig(), words)
    assert [(c.heading_path, c.text) for c in chunks] == [
        ([], "Preamble before any heading."),
        (["Groundgate"], "Intro paragraph."),
        (["Groundgate", "Install"], "Use pip."),
        (["Groundgate", "Install", "From source"], "Clone the repo."),
        (["Groundgate", "Configure"], "Edit the file."),
        (["Appendix"], "Last words."),
    ]
    assert_well_formed(doc, chunks)


def test_heading_only_sections_produce_no_chunks() -> None:
    chunks = chunk_document(md("# A\n## B\n\nText under B.\n\n## C\n"), ChunkingConfig(), words)
    assert [(c.heading_path, c.text) for c in chunks] == [(["A", "B"], "Text under B.")]


def test_plain_text_has_no_headings() -> None:
    doc = plain("# Not a heading\n\nJust text.")
    chunks = chunk_document(doc, ChunkingConfig(), words)
    assert [(c.heading_path, c.text) for c in chunks] == [([], "# Not a heading\n\nJust text.")]


def test_hash_without_space_is_not_a_heading() -> None:
    chunks = chunk_document(md("# Tags\n\n#python is fun.\n#######seven"), ChunkingConfig(), words)
    assert [c.heading_path for c in chunks] == [["Tags"]]
    assert chunks[0].text == "#python is fun.\n#######seven"


def test_small_paragraphs_pack_up_to_target() -> None:
    paragraphs = [facts(i * 2, 2) for i in range(10)]  # 8 words each
    doc = plain("\n\n".join(paragraphs))
    config = ChunkingConfig(target_tokens=20, max_tokens=30, overlap_tokens=0)
    chunks = chunk_document(doc, config, words)
    # Two paragraphs (16 words) fit the target; a third (24) would not.
    assert [c.text.count("\n\n") for c in chunks] == [1] * 5
    assert all(c.token_count <= 20 for c in chunks)
    assert_well_formed(doc, chunks)


# --- code fences ---------------------------------------------------------------------------

CODE = """# Usage

Run this:

```bash
# install (not a heading)
pip install groundgate

# then serve
groundgate serve
```

## After

Done."""


def test_code_fences_are_kept_whole_and_hide_headings() -> None:
    doc = md(CODE)
    chunks = chunk_document(doc, ChunkingConfig(overlap_tokens=0), words)
    assert [c.heading_path for c in chunks] == [["Usage"], ["Usage", "After"]]
    first = chunks[0].text
    assert first.startswith("Run this:\n\n```bash")
    assert first.endswith("groundgate serve\n```")
    assert "\n\n# then serve" in first


def test_an_oversized_code_block_splits_at_line_ends() -> None:
    lines = [f"value_{i} = compute({i})" for i in range(60)]  # 3 words a line
    doc = md("# Code\n\n```python\n" + "\n".join(lines) + "\n```")
    config = ChunkingConfig(target_tokens=20, max_tokens=30, overlap_tokens=10)
    chunks = chunk_document(doc, config, words)
    assert len(chunks) > 1
    assert all(c.token_count <= 30 for c in chunks)
    assert chunks[0].text.startswith("```python\nvalue_0")
    for chunk in chunks:
        after = doc.text[chunk.end_char : chunk.end_char + 1]
        assert after in ("", "\n")  # each piece ends at a line end
    # Code has no sentences: no overlap between its pieces.
    assert all(b.start_char >= a.end_char for a, b in itertools.pairwise(chunks))
    assert_well_formed(doc, chunks)


def test_unclosed_fence_runs_to_the_end() -> None:
    doc = md("# A\n\n```\n# inside\n\nmore")
    chunks = chunk_document(doc, ChunkingConfig(), words)
    assert [(c.heading_path, c.text) for c in chunks] == [(["A"], "```\n# inside\n\nmore")]


# --- caps and splitting --------------------------------------------------------------------


def test_a_giant_paragraph_splits_at_sentence_ends() -> None:
    doc = plain(facts(0, 100))  # 400 words, no blank line
    config = ChunkingConfig(target_tokens=40, max_tokens=50, overlap_tokens=0)
    chunks = chunk_document(doc, config, words)
    assert len(chunks) == 10
    assert all(c.token_count == 40 for c in chunks)
    assert all(re.fullmatch(r"Fact \d+ is here\.( Fact \d+ is here\.)*", c.text) for c in chunks)
    assert " ".join(c.text for c in chunks) == doc.text


def test_a_giant_sentence_splits_by_words() -> None:
    text = " ".join(f"w{i}" for i in range(1000))  # one "sentence", no punctuation
    doc = plain(text)
    config = ChunkingConfig(target_tokens=100, max_tokens=128, overlap_tokens=20)
    chunks = chunk_document(doc, config, words)
    assert all(c.token_count <= 128 for c in chunks)
    # Word pieces are not sentences: no overlap, and nothing is lost or reordered.
    assert " ".join(c.text for c in chunks).split() == text.split()
    assert all(b.start_char > a.end_char for a, b in itertools.pairwise(chunks))


def test_a_giant_word_splits_by_characters() -> None:
    blob = "x" * 5000
    doc = plain(f"Before. {blob} After.")
    config = ChunkingConfig(target_tokens=50, max_tokens=64, overlap_tokens=8)
    chunks = chunk_document(doc, config)
    assert all(c.token_count <= 64 for c in chunks)
    assert "".join(c.text for c in chunks).count("x") == 5000
    assert_well_formed(doc, chunks, estimate_tokens)


def test_no_chunk_exceeds_max_tokens_with_the_default_estimate() -> None:
    text = (Path(__file__).read_text(encoding="utf-8") + "\n\n") * 3  # code, prose, long lines
    doc = md(text)
    config = ChunkingConfig(target_tokens=60, max_tokens=80, overlap_tokens=16)
    chunks = chunk_document(doc, config)
    assert len(chunks) > 20
    assert max(c.token_count for c in chunks) <= 80
    assert_well_formed(doc, chunks, estimate_tokens)


def test_a_custom_counter_is_used() -> None:
    doc = plain(facts(0, 30))
    config = ChunkingConfig(target_tokens=100, max_tokens=120, overlap_tokens=0)
    chunks = chunk_document(doc, config, len)  # characters as "tokens"
    assert all(c.token_count == len(c.text) <= 100 for c in chunks)
    assert len(chunks) > 3


# --- overlap -------------------------------------------------------------------------------


def test_overlap_repeats_whole_trailing_sentences() -> None:
    doc = md("# Facts\n\n" + "\n\n".join(facts(i * 3, 3) for i in range(20)))
    config = ChunkingConfig(target_tokens=40, max_tokens=50, overlap_tokens=8)
    chunks = chunk_document(doc, config, words)
    assert len(chunks) > 3
    for previous, chunk in itertools.pairwise(chunks):
        shared = doc.text[chunk.start_char : previous.end_char]
        # Two four-word sentences fit the eight-token overlap exactly.
        assert re.fullmatch(r"Fact \d+ is here\.\s+Fact \d+ is here\.", shared), shared
        assert previous.text.endswith(shared)
        assert chunk.text.startswith(shared)
        assert chunk.token_count <= 50
    assert_well_formed(doc, chunks)


def test_overlap_never_crosses_a_heading() -> None:
    doc = md("# One\n\n" + facts(0, 20) + "\n\n# Two\n\n" + facts(100, 20))
    config = ChunkingConfig(target_tokens=30, max_tokens=40, overlap_tokens=10)
    chunks = chunk_document(doc, config, words)
    two = [c for c in chunks if c.heading_path == ["Two"]]
    assert two[0].text.startswith("Fact 100 is here.")
    assert all("Fact 1" in c.text for c in two)  # no sentence from section One leaks in
    assert all(not re.search(r"Fact \d\b", c.text) for c in two)


def test_overlap_zero_means_disjoint_chunks() -> None:
    doc = plain(facts(0, 50))
    config = ChunkingConfig(target_tokens=20, max_tokens=30, overlap_tokens=0)
    chunks = chunk_document(doc, config, words)
    assert all(b.start_char > a.end_char for a, b in itertools.pairwise(chunks))


def test_overlap_is_dropped_when_it_would_break_the_cap() -> None:
    # Each paragraph is 28 words: with 8 words of overlap it would exceed max_tokens 30.
    doc = plain("\n\n".join(facts(i * 7, 7) for i in range(4)))
    config = ChunkingConfig(target_tokens=20, max_tokens=30, overlap_tokens=8)
    chunks = chunk_document(doc, config, words)
    assert len(chunks) == 4
    assert all(c.token_count == 28 for c in chunks)


def test_a_long_last_sentence_may_stretch_the_overlap() -> None:
    # The overlap budget is 4 but the last sentence has 6 words: it is repeated whole.
    long_sentence = "This final sentence has six words."
    doc = plain(facts(0, 8) + " " + long_sentence + "\n\n" + facts(50, 8))
    config = ChunkingConfig(target_tokens=40, max_tokens=60, overlap_tokens=4)
    chunks = chunk_document(doc, config, words)
    assert len(chunks) == 2
    assert chunks[1].text.startswith(long_sentence + "\n\nFact 50")


# --- stability and sentences ---------------------------------------------------------------


def test_chunking_is_deterministic_and_offsets_point_into_the_text() -> None:
    doc = md(GUIDE + "\n\n" + CODE + "\n\n" + facts(0, 200))
    config = ChunkingConfig(target_tokens=30, max_tokens=40, overlap_tokens=8)
    first = chunk_document(doc, config)
    assert first == chunk_document(doc, config)
    assert_well_formed(doc, first, estimate_tokens)
    ends = [c.end_char for c in first]
    assert ends == sorted(ends)


def test_empty_documents_have_no_chunks() -> None:
    assert chunk_document(plain(""), ChunkingConfig()) == []
    assert chunk_document(md("# Only\n\n## Headings"), ChunkingConfig()) == []


def test_sentence_spans_respect_abbreviations_decimals_and_lists() -> None:
    text = (
        "Dr. Smith met J. R. R. Tolkien, e.g. in Oxford. Pi is 3.14 today! Really?\n"
        "1. Install it.\n2. Run it\n- a bullet. Another one.\n"
        "A wrapped line\ncontinues here. It costs ca. five euros... or so. The end"
    )
    got = [text[a:b] for a, b in sentence_spans(text, 0, len(text))]
    assert got == [
        "Dr. Smith met J. R. R. Tolkien, e.g. in Oxford.",
        "Pi is 3.14 today!",
        "Really?",
        "1. Install it.",
        "2. Run it",
        "- a bullet.",
        "Another one.",
        "A wrapped line\ncontinues here.",
        "It costs ca. five euros... or so.",
        "The end",
    ]


def test_cjk_sentences_end_without_spaces() -> None:
    text = "東京は日本の首都です。大阪は大きい\uff01本当\uff1f「はい。」Ok."
    got = [text[a:b] for a, b in sentence_spans(text, 0, len(text))]
    assert got == [
        "東京は日本の首都です。",
        "大阪は大きい\uff01",
        "本当\uff1f",
        "「はい。」",
        "Ok.",
    ]
    doc = plain(text * 50)
    chunks = chunk_document(doc, ChunkingConfig(target_tokens=60, max_tokens=80))
    assert len(chunks) > 5
    assert all(c.text.endswith(("。", "\uff01", "\uff1f", "」", ".")) for c in chunks)


def test_estimate_errs_high() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("Hello, world.") == math.ceil(4 * 1.2)
    assert estimate_tokens("internationalization") > estimate_tokens("international")
    assert estimate_tokens("東京は日本の首都です") >= 10  # one per CJK character
    assert estimate_tokens("hello world") == math.ceil(2 * 1.2)


def test_estimate_is_not_below_the_minilm_tokenizer_on_prose() -> None:
    embedder = pytest.importorskip("groundgate.providers.local.embedder")
    tokenizers = pytest.importorskip("tokenizers")
    try:
        path = embedder.find_tokenizer_path()
    except embedder.EmbedderUnavailable:
        pytest.skip("MiniLM tokenizer not installed")
    tokenizer = tokenizers.Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    prose = [
        GUIDE,
        "Retrieval-augmented generation grounds answers in documents: the gateway retrieves "
        "the most relevant chunks, cites them, and refuses to answer when nothing supports it.",
        "Photosynthesis converts light energy into chemical energy, which is stored in glucose.",
    ]
    for text in prose:
        real = len(tokenizer.encode(text, add_special_tokens=False).ids)
        assert estimate_tokens(text) >= real


@pytest.mark.parametrize(
    ("target", "maximum", "overlap"), [(0, 10, 0), (20, 10, 0), (10, 20, -1), (10, 20, 20)]
)
def test_invalid_configs_are_refused(target: int, maximum: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        ChunkingConfig(target_tokens=target, max_tokens=maximum, overlap_tokens=overlap)


def test_loaded_html_chunks_by_its_headings(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(
        "<h1>Guide</h1><p>Welcome.</p><h2>Setup</h2><p>Install it.</p><pre># not a heading</pre>"
    )
    (doc,), _ = load_path(tmp_path)
    chunks = chunk_document(doc, ChunkingConfig())
    assert [(c.heading_path, c.text) for c in chunks] == [
        (["Guide"], "Welcome."),
        (["Guide", "Setup"], "Install it.\n\n```\n# not a heading\n```"),
    ]
