"""Conformance kit for data sources: the records, a deterministic split, a content hash.

Inherit :class:`DataSourceConformance` in a ``Test*`` class, set :attr:`source` and write
:meth:`write_inputs`::

    class TestMySource(DataSourceConformance):
        source = "mycompany.csv"
        def write_inputs(self, folder, variant):
            (folder / "a.csv").write_text(f"text\\nrow {variant}\\n" + "another row\\n" * 20)
            return {"paths": ["a.csv"]}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from qslm.components import Dataset, DataSource
from qslm.testing.kit import Target, json_safe, make_component, make_context

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_dataset(data: Any, who: str = "the data source") -> None:
    """A :class:`Dataset` whose records are JSON-safe dicts with a non-blank ``"text"``,
    with a sha256 hex digest and a JSON-safe ``info``."""
    assert isinstance(data, Dataset), f"{who}: load() returned {type(data).__name__}, not Dataset"
    assert isinstance(data.train, list) and data.train, f"{who}: no training records"
    assert isinstance(data.validation, list), f"{who}: validation must be a list"
    for split, records in (("train", data.train), ("validation", data.validation)):
        for i, record in enumerate(records):
            where = f"{who}: {split}[{i}]"
            assert isinstance(record, dict), f"{where} is {type(record).__name__}, not a dict"
            text = record.get("text")
            assert isinstance(text, str) and text.strip(), f'{where} has no non-blank "text"'
            json_safe(record, where)
    assert isinstance(data.sha256, str) and _SHA256.match(data.sha256), (
        f"{who}: sha256 must be 64 lowercase hex digits (hashlib's hexdigest), got {data.sha256!r}"
    )
    assert isinstance(data.info, dict), f"{who}: info must be a dict"
    json_safe(data.info, f"{who}: info")


def check_deterministic(first: Dataset, second: Dataset, who: str = "the data source") -> None:
    """Two loads of the same inputs with the same seed: the same records, split and hash."""
    assert first.sha256 == second.sha256, f"{who}: the same inputs hashed differently"
    assert first.train == second.train, (
        f"{who}: the same inputs and seed gave different training records (split with a "
        "random.Random(ctx.seed), never the global random state or set order)"
    )
    assert first.validation == second.validation, f"{who}: the validation split differs"


def check_hash_follows_content(same: Dataset, moved: Dataset, other: Dataset, who: str) -> None:
    """The hash is the content's: the same files in another folder hash the same, changed
    content hashes differently."""
    assert same.sha256 == moved.sha256, (
        f"{who}: the same files in another folder hashed differently (hash the content and "
        "file names, not absolute paths)"
    )
    assert same.sha256 != other.sha256, f"{who}: changed input content kept the same sha256"


class DataSourceConformance:
    """Every ``test_*`` method runs the data source on inputs from :meth:`write_inputs`."""

    source: ClassVar[Target | None] = None
    """Registered name, DataSource subclass or zero-argument factory."""
    seed: ClassVar[int] = 0

    def write_inputs(self, folder: Path, variant: int) -> dict[str, Any]:
        """Write input files into ``folder`` and return the options that read them (paths
        relative to ``folder``). ``variant`` 0 and 1 must differ in content."""
        raise NotImplementedError(f"{type(self).__name__}: define write_inputs(folder, variant)")

    def load(self, folder: Path, variant: int = 0, *, seed: int | None = None) -> Dataset:
        inputs = folder / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        options = self.write_inputs(inputs, variant)
        if self.source is None:
            raise TypeError(f"{type(self).__name__}: set `source = ...` on the class")
        component = make_component(self.source, DataSource, options, base_dir=inputs)
        ctx = make_context(folder / "build", seed=self.seed if seed is None else seed)
        return component.load(ctx)

    def test_records(self, tmp_path: Path) -> None:
        check_dataset(self.load(tmp_path), self._who())

    def test_split_is_deterministic(self, tmp_path: Path) -> None:
        check_deterministic(self.load(tmp_path / "a"), self.load(tmp_path / "b"), self._who())

    def test_hash_follows_content(self, tmp_path: Path) -> None:
        check_hash_follows_content(
            self.load(tmp_path / "a"),
            self.load(tmp_path / "b"),
            self.load(tmp_path / "c", variant=1),
            self._who(),
        )

    def _who(self) -> str:
        return f"data source {self.source!r}"
