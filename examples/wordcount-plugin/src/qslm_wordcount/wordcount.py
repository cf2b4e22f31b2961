"""A word-count evaluator: the smallest useful evaluator."""

from pydantic import Field

from qslm.api import Evaluator, Options


class WordCountOptions(Options):
    lowercase: bool = Field(default=True, description="Count case-insensitively.")


class WordCount(Evaluator):
    Options = WordCountOptions

    def evaluate(self, ctx, artifact, data):
        words = [w for r in data.validation for w in r["text"].split()]
        if self.options.lowercase:
            words = [w.lower() for w in words]
        return {"words": len(words), "distinct_words": len(set(words))}
