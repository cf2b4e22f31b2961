"""The ``hf`` data source: the ``datasets`` library on local files (json, csv, parquet, text), a
dataset saved with ``save_to_disk``, or a Hugging Face hub dataset (online only).

``datasets`` is the ``datasets`` extra of qslm-core; without it the source says how to install
it when the pipeline is validated. Pre-flight imports no ``datasets``: it checks the paths, and
asks the hub (``huggingface_hub``) whether a named dataset exists, so offline fails at once.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from qslm.components import Dataset, DataSource, Options
from qslm.data.files import seeded_split
from qslm.data.records import check_columns, kind_of, make_record
from qslm.errors import ConfigError, QslmError

if TYPE_CHECKING:
    from qslm.context import RunContext

INSTALL_HINT = "the hf data source needs the datasets library: pip install 'qslm-core[datasets]'"
SUFFIXES = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
}


class HfOptions(Options):
    """Options of the ``hf`` data source."""

    path: str = Field(
        description="A data file, a folder of data files, a folder saved with save_to_disk "
        "(relative to the pipeline file), or a hub dataset name such as 'user/name'."
    )
    loader: Literal["auto", "json", "csv", "parquet", "text", "disk", "hub"] = Field(
        default="auto",
        description="How to load path: a datasets builder for local files, 'disk' "
        "(load_from_disk), 'hub' (load_dataset by name), or 'auto' (from what path is).",
    )
    name: str = Field(default="", description="The dataset configuration name (hub datasets).")
    revision: str = Field(
        default="",
        description="Hub datasets: the branch, tag or commit to load (default main); the "
        "commit it resolves to is recorded in the build's manifest.",
    )
    split: str = Field(default="train", description="The split training records come from.")
    validation_split: str = Field(
        default="",
        description="A split of the dataset held out for evaluation; empty = hold out "
        "validation_fraction of the training split.",
    )
    validation_fraction: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Share of records held out (seeded split)."
    )
    format: Literal["auto", "alpaca", "chat", "text"] = Field(
        default="auto",
        description='What each row is: "alpaca", "chat", "text", or "auto" (by its columns).',
    )
    columns: dict[str, str] = Field(
        default={},
        description='Column names of the dataset for our fields, e.g. {instruction = "question", '
        'output = "answer"}.',
    )
    max_records: int = Field(
        default=0, ge=0, description="Use at most this many rows of each split; 0 = all."
    )


class HfSource(DataSource):
    """Rows of a ``datasets`` dataset, checked like ``jsonl`` lines (``<split> row 17: missing
    "output"``), de-duplicated, split with the run's seed unless a validation split is named."""

    Options = HfOptions
    options: HfOptions

    def resolved(self) -> tuple[str, Path | None]:
        """(loader, local path or None for the hub), checked without importing datasets."""
        o = self.options
        local = self.resolve_path(o.path)
        loader = o.loader
        if loader == "hub":
            return loader, None
        if loader == "auto":
            if local.is_dir():
                loader = "disk" if _saved_dataset(local) else _folder_loader(local)
            elif local.is_file():
                loader = SUFFIXES.get(local.suffix.lower(), "")
                if not loader:
                    raise ConfigError(
                        f"data.options.path: cannot tell how to read {local.name}; set "
                        f"data.options.loader (one of {', '.join(sorted(set(SUFFIXES.values())))})"
                    )
            elif _looks_like_hub_name(o.path):
                return "hub", None
            else:
                raise ConfigError(f"data.options.path: no such file or folder: {local}")
            return loader, local
        if not local.exists():
            raise ConfigError(f"data.options.path: no such file or folder: {local}")
        if loader == "disk" and not _saved_dataset(local):
            raise ConfigError(
                f"data.options.path: {local} is not a folder written by save_to_disk "
                "(no dataset_info.json or dataset_dict.json)"
            )
        return loader, local

    def plan(self) -> list[str]:
        if importlib.util.find_spec("datasets") is None:
            raise ConfigError(f"data.source: {INSTALL_HINT}")
        check_columns(self.options.columns, "data.options.columns")
        loader, local = self.resolved()
        if local is None:
            commit = _check_hub(self.options.path, self.options.revision)
            return [
                f"hub dataset {self.options.path!r} (commit {commit[:12]}), "
                f"split {self.options.split!r}"
            ]
        return [f"{loader} from {local}, split {self.options.split!r}"]

    def load(self, ctx: RunContext) -> Dataset:
        if importlib.util.find_spec("datasets") is None:
            raise ConfigError(f"data.source: {INSTALL_HINT}")
        check_columns(self.options.columns, "data.options.columns")
        o = self.options
        loader, local = self.resolved()
        from qslm.quiet import hf_quiet

        # a hub dataset is loaded at the commit its revision points to now, which is recorded
        commit = _check_hub(o.path, o.revision) if loader == "hub" else None
        with hf_quiet():
            splits = self._splits(loader, local, commit)
        train_rows = self._rows(splits, o.split, "data.options.split")
        seen: dict[str, dict[str, Any]] = {}
        duplicates = _gather(train_rows, o.split, o, seen, loader)
        if not seen:
            raise ConfigError(f"data.options.split: the split {o.split!r} has no rows")
        if o.validation_split:
            held: dict[str, dict[str, Any]] = {}
            rows = self._rows(splits, o.validation_split, "data.options.validation_split")
            duplicates += _gather(rows, o.validation_split, o, held, loader)
            train = [r for k, r in seen.items() if k not in held]
            validation = list(held.values())
        else:
            train, validation = seeded_split(list(seen.values()), o.validation_fraction, ctx.seed)
        everything = [*train, *validation]
        hub = {"hub": {"repo": o.path, "revision": o.revision or "main", "commit": commit}}
        return Dataset(
            train=train,
            validation=validation,
            sha256=self._sha256(local, splits),
            info={
                "loader": loader,
                "path": str(local) if local else o.path,
                "splits": {name: len(ds) for name, ds in splits.items()},
                "records": len(everything),
                "kinds": dict(Counter(kind_of(r) for r in everything)),
                "duplicates_dropped": duplicates,
                "characters": sum(len(r["text"]) for r in everything),
                **(hub if commit else {}),
            },
        )

    def _splits(self, loader: str, local: Path | None, commit: str | None) -> dict[str, Any]:
        """Every split of the dataset, by name (a DatasetDict as a plain dict)."""
        import datasets

        o = self.options
        try:
            if loader == "disk":
                loaded = datasets.load_from_disk(str(local))
            elif loader == "hub":
                loaded = datasets.load_dataset(o.path, o.name or None, revision=commit)
            else:
                files = (
                    sorted(str(p) for p in local.rglob("*") if p.suffix.lower() in _ends(loader))
                    if local.is_dir()
                    else [str(local)]
                )
                # CSV cells are text: read "" as "" (not NaN), and numbers back as strings
                extra = {"keep_default_na": False} if loader == "csv" else {}
                loaded = datasets.load_dataset(loader, data_files=files, **extra)
                if loader == "csv":
                    loaded = loaded.cast(
                        datasets.Features(
                            {c: datasets.Value("string") for c in loaded["train"].column_names}
                        )
                    )
        except (ConfigError, QslmError):
            raise
        except Exception as exc:  # datasets raises many kinds; the user needs the message
            raise QslmError(
                f"data: the datasets library could not load {o.path!r} ({loader}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(loaded, datasets.Dataset):
            return {"train": loaded}
        return dict(loaded)

    def _rows(self, splits: dict[str, Any], split: str, key: str) -> Any:
        if split not in splits:
            raise ConfigError(
                f"{key}: the dataset has no split {split!r} (it has {', '.join(sorted(splits))})"
            )
        ds = splits[split]
        if self.options.max_records:
            ds = ds.select(range(min(self.options.max_records, len(ds))))
        return ds

    def _sha256(self, local: Path | None, splits: dict[str, Any]) -> str:
        """The bytes of the local files; for a hub dataset, the datasets fingerprints."""
        digest = hashlib.sha256()
        if local is None:
            for name in sorted(splits):
                digest.update(f"{name}\0{splits[name]._fingerprint}\0".encode())
            return digest.hexdigest()
        files = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else [local]
        for p in files:
            digest.update(str(p.relative_to(local) if local.is_dir() else p.name).encode())
            digest.update(b"\0" + p.read_bytes() + b"\0")
        return digest.hexdigest()


def _gather(
    rows: Any, split: str, o: HfOptions, seen: dict[str, dict[str, Any]], loader: str
) -> int:
    import json

    duplicates = 0
    for i, row in enumerate(rows):
        if loader == "text" and not str(row.get("text", "")).strip():
            continue  # the text builder makes a row of every line, blank ones included
        record = make_record(row, f"{split} row {i}", o.format, o.columns)
        key = json.dumps(record, sort_keys=True)
        duplicates += key in seen
        seen.setdefault(key, record)
    return duplicates


def _ends(loader: str) -> set[str]:
    return {s for s, kind in SUFFIXES.items() if kind == loader}


def _saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_info.json").is_file() or (folder / "dataset_dict.json").is_file()


def _folder_loader(folder: Path) -> str:
    kinds = {SUFFIXES[p.suffix.lower()] for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES}
    if len(kinds) != 1:
        found = ", ".join(sorted(kinds)) or "no data file"
        raise ConfigError(
            f"data.options.path: the folder {folder} must hold one kind of data file "
            f"(.jsonl/.json, .csv, .parquet or .txt); found {found}"
        )
    return kinds.pop()


def _looks_like_hub_name(path: str) -> bool:
    parts = path.split("/")
    return 1 <= len(parts) <= 2 and all(p and not p.startswith(".") for p in parts)


def _check_hub(name: str, revision: str = "") -> str:
    """Ask the hub whether the dataset exists and which commit ``revision`` (default main) is;
    offline or unknown is a ConfigError now, not a failure after the other stages' pre-flight."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from qslm.hub import offline, scrub

    try:
        if offline():  # read now: `qslm run --offline` may come after huggingface_hub's import
            raise OfflineModeIsEnabled("offline")
        info = HfApi().dataset_info(name, revision=revision or None, timeout=10)
    except OfflineModeIsEnabled:
        raise ConfigError(
            f"data.options.path: {name!r} is not a local file or folder, and the Hugging Face "
            "hub is switched off (HF_HUB_OFFLINE); point path at local data or go online"
        ) from None
    except RevisionNotFoundError:
        raise ConfigError(
            f"data.options.revision: the hub dataset {name!r} has no revision {revision!r}"
        ) from None
    except GatedRepoError:
        raise ConfigError(
            f"data.options.path: the hub dataset {name!r} is gated: accept its conditions on "
            "its hub page and set HF_TOKEN (or `hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise ConfigError(
            f"data.options.path: {name!r} is not a local file or folder, and the hub has no "
            "dataset of that name (or it is private: set HF_TOKEN or log in with `hf auth login`)"
        ) from None
    except Exception as exc:  # network failures come in many types
        raise ConfigError(
            f"data.options.path: {name!r} is not a local file or folder, and the Hugging Face "
            f"hub cannot be reached (offline?): {type(exc).__name__}: {scrub(str(exc))}"
        ) from None
    return str(info.sha)
