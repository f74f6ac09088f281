"""Files a user keeps: written whole or not at all, and read back without running code.

Every writer goes through :func:`write_atomic`: the bytes land in a temporary file in the target
folder, are flushed to disk, and the file is renamed over the target, so a crash or a full disk
never leaves half a file behind. Checkpoints hold tensors only and load with
``weights_only=True``, so opening one can never execute code.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch


def _read_umask() -> int:
    # The umask can only be read by setting it; done once, at import, on the importing thread.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Permissions of a new file: what ``open`` would give, not the private 0600 of a temporary file.
_FILE_MODE = 0o666 & ~_read_umask()


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON; non-finite floats become ``null``."""
    text = json.dumps(_finite_or_none(obj), indent=2, sort_keys=False, allow_nan=False)
    return write_atomic(path, (text + "\n").encode())


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, turning a parse failure into a ``ValueError`` that names the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def write_csv(
    path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> Path:
    """Write a CSV table; missing (NaN or None) cells are left empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if _missing(v) else _cell(v) for v in row])
    return write_atomic(path, buffer.getvalue().encode())


def save_checkpoint(path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor]) -> Path:
    """Save a flat mapping of tensors (no other objects) atomically."""
    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(f"a checkpoint holds tensors only; not tensors: {', '.join(bad)}")
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in tensors.items()}, buffer)
    return write_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load tensors saved by :func:`save_checkpoint`; never unpickles code."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch reports a bad file through many exception types
        raise ValueError(f"{path} is not a Benchtop checkpoint: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{path} is not a Benchtop checkpoint: expected a mapping of tensors")
    return data


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    return obj
