"""Where a file lives: a local path, or an object on a filesystem named by a URI.

:func:`resolve` is the one place that reads a path or URI. A cloud scheme's filesystem is
built from the cloud's standard environment, or :class:`StorageOptions`; an unknown scheme is
an error, never a local path.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from ..exceptions import ConfigurationError

__all__ = ["SCHEMES", "Location", "StorageOptions", "resolve"]

SCHEMES: dict[str, tuple[str, str | None]] = {
    "s3": ("s3", "s3"),
    "s3a": ("s3", "s3"),
    "gs": ("gcs", "gcs"),
    "gcs": ("gcs", "gcs"),
    "az": ("abfs", "azure"),
    "abfs": ("abfs", "azure"),
    "abfss": ("abfs", "azure"),
    "memory": ("memory", None),
}
"""URI scheme -> (fsspec protocol, the extra that installs it; None: fsspec alone)."""

READ_BLOCK = 4 * 2**20
"""Bytes an object is read ahead by when a reader asks for less (s3fs reads 50 MiB ahead,
and keeps them while the file is open: most of a streaming run's memory on a large object)."""

_URI = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):(?P<slashes>/*)")


@dataclass(frozen=True)
class StorageOptions:
    """fsspec's storage options for a URI's filesystem (``endpoint_url``, ``profile`` for s3fs,
    ``token`` for gcsfs...), shown by their names only: their values may be credentials."""

    options: Mapping[str, Any]

    def __repr__(self) -> str:
        return f"StorageOptions({', '.join(sorted(self.options))})"


@dataclass(frozen=True)
class Location:
    """A resolved place: a local ``path`` (``fs`` None), or an fsspec ``fs`` and ``bucket/key``."""

    path: str
    fs: Any = None
    uri: str = ""

    @property
    def local(self) -> bool:
        return self.fs is None

    @property
    def local_path(self) -> Path:
        if self.fs is not None:
            raise ValueError(f"{self} is not a local file")
        return Path(self.path)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def exists(self) -> bool:
        if self.fs is None:
            return Path(self.path).exists()
        self.fs.invalidate_cache(self.path)  # another process may have written it since
        return bool(self.fs.exists(self.path))

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        if self.fs is None:
            return pafs.LocalFileSystem(), str(Path(self.path).absolute())
        arrow = getattr(self.fs, "fs", None)  # fsspec's wrapper of a pyarrow filesystem
        if isinstance(arrow, pafs.FileSystem):
            return arrow, self.path
        return pafs.PyFileSystem(_Handler(self.fs)), self.path

    def __str__(self) -> str:
        return self.uri or self.path

    def __fspath__(self) -> str:
        # only a local location is a path of the operating system
        return str(self.local_path)


class _Handler(pafs.FSSpecHandler):  # type: ignore[misc]
    """fsspec's filesystem for pyarrow, reading objects :data:`READ_BLOCK` bytes ahead."""

    def open_input_file(self, path: str) -> Any:  # fsspec's asks isfile first: a request more
        return pa.PythonFile(self.fs.open(path, mode="rb", block_size=READ_BLOCK), mode="r")

    open_input_stream = open_input_file


def resolve(target: str | Path | Location, filesystem: Any = None) -> Location:
    """The :class:`Location` of a path or URI, on ``filesystem`` when one is given.

    >>> resolve("data/state.parquet").local
    True
    >>> resolve("ftp://host/x.parquet")
    Traceback (most recent call last):
    ...
    flameup_pandas.exceptions.ConfigurationError: cannot open 'ftp://host/x.parquet': ...
    """
    if isinstance(target, Location):
        return target
    options: Mapping[str, Any] = {}
    if isinstance(filesystem, StorageOptions):
        options, filesystem = filesystem.options, None
    if filesystem is not None:
        return _on(filesystem, target)
    if isinstance(target, Path):
        return Location(str(target))
    text = str(target)
    if (match := _URI.match(text)) is None:
        return Location(text)
    scheme = match["scheme"].lower()
    if scheme == "file":
        parts = urllib.parse.urlsplit(text)
        if "?" in text or "#" in text or parts.netloc not in ("", "localhost"):
            raise ConfigurationError(
                f"cannot open {text!r}: a file:// URI names a local file by its path alone "
                "(no host; a '?' or '#' in a name is written %3F or %23), or pass a plain path"
            )
        return Location(urllib.request.url2pathname(parts.path))
    if scheme not in SCHEMES or match["slashes"] != "//":
        raise ConfigurationError(
            f"cannot open {text!r}: not a local path or a supported URI (s3://, gs://, az://, "
            "abfs://, file://, memory://); install 'flameup-pandas[s3]', '[gcs]', '[azure]' or "
            "'[cloud]' for the object stores"
        )
    protocol, extra = SCHEMES[scheme]
    try:
        import fsspec

        fs = fsspec.filesystem(protocol, **options)
    except TypeError as exc:  # an option this filesystem does not take (named, never valued)
        raise ConfigurationError(
            f"cannot open {text!r} with the storage options given "
            f"({', '.join(sorted(options))}): {exc}"
        ) from None
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot open {text!r}: {protocol} needs an extra package "
            f"({exc.name or exc}); pip install 'flameup-pandas[{extra or 'cloud'}]'"
        ) from exc
    return Location(fs._strip_protocol(text), fs, text)


def _on(filesystem: Any, target: str | Path) -> Location:
    """``target`` on an explicit filesystem (fsspec, or pyarrow wrapped for fsspec)."""
    fs = filesystem
    if isinstance(filesystem, pafs.FileSystem):
        from fsspec.implementations.arrow import ArrowFSWrapper

        fs = ArrowFSWrapper(filesystem)
        protocols = {"file" if filesystem.type_name == "local" else filesystem.type_name}
    elif hasattr(filesystem, "_strip_protocol") and hasattr(filesystem, "protocol"):
        spoken = filesystem.protocol
        protocols = {spoken} if isinstance(spoken, str) else set(spoken)
    else:
        raise ConfigurationError(
            f"filesystem= takes an fsspec or pyarrow filesystem, not a {type(filesystem).__name__}"
        )
    text = str(target)
    if (match := _URI.match(text)) is not None and match["slashes"] == "//":
        scheme = match["scheme"].lower()
        wanted = {scheme, SCHEMES.get(scheme, (scheme, None))[0]}
        if not wanted & ({"file", "local"} if "file" in protocols else protocols):
            raise ConfigurationError(
                f"{text!r} is not on the filesystem given (filesystem= speaks "
                f"{', '.join(sorted(protocols))}); pass a path on it, or no filesystem="
            )
        text = text[match.end() :]
    if "file" in protocols or "local" in protocols:
        return Location(text)
    return Location(fs._strip_protocol(text), fs, text if match is None else str(target))
