"""Rows from Hugging Face ``datasets``: ``hf:PATH_OR_NAME[:split]`` as an input anywhere a file goes.

Most data sets people grade are in ``datasets`` form, so rubrix reads them where they are:

* a folder written by ``save_to_disk`` (a ``Dataset``, or a ``DatasetDict`` with splits) is opened
  with ``load_from_disk``: Arrow files memory-mapped, so a data set larger than memory is read a
  batch at a time;
* data files (``.jsonl``, ``.json``, ``.csv``, ``.parquet``, ``.arrow``, globs, or a folder of
  them) are read by the matching ``datasets`` builder in **streaming** mode: nothing is copied
  into the ``datasets`` cache first;
* anything else is a Hub name, streamed as well — only when the Hub is reachable. With
  ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` set, a name that is not a local path is refused at
  once instead of waiting on the network.

Rows are numbered from 1 (``hf:SPEC:ROW: field: message`` in errors), like lines of a file, and go
through the same validation as any other input (:mod:`rubrix.records`).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import InputError, MissingExtraError

PREFIX = "hf:"
_BATCH_ROWS = 1024
_SPLIT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-\[\]%:]*$")
_DATA_BUILDERS = {".jsonl": "json", ".json": "json", ".ndjson": "json", ".csv": "csv", ".parquet": "parquet",
                  ".pq": "parquet", ".arrow": "arrow", ".gz": None}


def is_hf_spec(path: Any) -> bool:
    """Whether an input names a ``datasets`` source (``hf:...``) rather than a file."""
    return isinstance(path, str | os.PathLike) and str(path).startswith(PREFIX)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``hf:TARGET[:split]`` → (target, split). A colon belongs to the target when the whole
    target exists on disk, so local paths with colons still work."""
    body = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    if not body:
        raise InputError("names no data set; write hf:PATH_OR_NAME[:split]", file=spec)
    if Path(body).expanduser().exists() or ":" not in body:
        return body, None
    target, split = body.rsplit(":", 1)
    if not target or not _SPLIT.match(split):
        return body, None
    return target, split


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _looks_local(target: str) -> bool:
    return target.startswith(("/", "./", "../", "~")) or target in (".", "..") or \
        Path(target).suffix.lower() in _DATA_BUILDERS or "*" in target


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise MissingExtraError("reading hf: inputs", "datasets", "datasets") from None
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    return datasets


def open_dataset(spec: str) -> Any:
    """The ``Dataset`` / ``IterableDataset`` an ``hf:`` spec names, its split chosen; errors are one
    :class:`InputError` naming the spec (no such folder, no such split, Hub unreachable)."""
    target, split = parse_spec(spec)
    path = Path(target).expanduser()
    datasets = _import_datasets()
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as exc:  # noqa: BLE001 - any load failure is the user's folder, reported once
            raise InputError(f"cannot open saved data set: {_first_line(exc)}", file=spec) from None
        return _pick_split(ds, split, spec, datasets)
    if path.exists() or ("*" in target and glob.glob(os.path.expanduser(target))):
        return _stream_files(datasets, path, target, split, spec)
    if _looks_local(target):
        raise InputError("no such data set folder or data file", file=spec)
    if _offline():
        raise InputError("not a local folder or file, and the Hugging Face Hub is off "
                         "(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE); save the data set with save_to_disk and "
                         "name that folder", file=spec)
    try:
        ds = datasets.load_dataset(target, split=split, streaming=True)
    except Exception as exc:  # noqa: BLE001 - network, auth, missing repo: all one line for the user
        raise InputError(f"cannot load from the Hugging Face Hub: {_first_line(exc)}", file=spec) from None
    return _pick_split(ds, split, spec, datasets)


def _stream_files(datasets: Any, path: Path, target: str, split: str | None, spec: str) -> Any:
    """Data files through the matching builder, streamed; a folder is left to ``datasets`` to sort."""
    try:
        if path.is_dir():
            ds = datasets.load_dataset(str(path), streaming=True)
        else:
            suffix = Path(target.removesuffix(".gz")).suffix.lower()
            builder = _DATA_BUILDERS.get(suffix)
            if builder is None:
                raise InputError("cannot tell the data file's format; use .jsonl, .json, .csv, .parquet or "
                                 ".arrow", file=spec)
            ds = datasets.load_dataset(builder, data_files=str(Path(target).expanduser()), streaming=True)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot read data files: {_first_line(exc)}", file=spec) from None
    return _pick_split(ds, split, spec, datasets)


def _pick_split(ds: Any, split: str | None, spec: str, datasets: Any) -> Any:
    if isinstance(ds, datasets.DatasetDict | datasets.IterableDatasetDict):
        names = list(ds.keys())
        if split is None:
            if len(names) == 1:
                return ds[names[0]]
            raise InputError(f"has several splits ({', '.join(names)}); name one: hf:...:{names[0]}",
                             file=spec)
        if split not in ds:
            raise InputError(f"no split {split!r} (splits: {', '.join(names) or 'none'})", file=spec)
        return ds[split]
    if split is not None:
        raise InputError(f"has no splits, so ':{split}' names nothing; drop it", file=spec)
    return ds


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def iter_rows(spec: str, check_columns: Callable[[list[str], int | None], None] | None = None
              ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(row number, row)`` from an ``hf:`` spec, a batch at a time (bounded memory)."""
    ds = open_dataset(spec)
    columns = getattr(ds, "column_names", None)
    if check_columns is not None and columns:
        check_columns(list(columns), None)
    number = 0
    try:
        for batch in ds.iter(batch_size=_BATCH_ROWS):
            keys = list(batch)
            size = len(batch[keys[0]]) if keys else 0
            for i in range(size):
                number += 1
                yield number, {k: batch[k][i] for k in keys}
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file half-way through a stream
        raise InputError(f"cannot read data set rows: {_first_line(exc)}", file=spec,
                         line=number + 1) from None


def fingerprint(spec: str) -> dict[str, Any]:
    """What a manifest records about an ``hf:`` input: the spec and, for a saved data set, its
    ``datasets`` fingerprint (which changes whenever its content does)."""
    ds = open_dataset(spec)
    out: dict[str, Any] = {"path": spec}
    fp = getattr(ds, "_fingerprint", None)
    if fp:
        out["fingerprint"] = fp
    rows = getattr(ds, "num_rows", None)
    if isinstance(rows, int):
        out["rows"] = rows
    return out


__all__ = ["PREFIX", "fingerprint", "is_hf_spec", "iter_rows", "open_dataset", "parse_spec"]
