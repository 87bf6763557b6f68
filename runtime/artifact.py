"""The `.mlacc` artifact: one zip file (stored, not compressed) with fixed members.

    manifest.json         format + version, mlacc version, target, executor, pipeline,
                          entry points (input/output signatures, pytree specs), weight list
    module.mlir           the final MLIR, for people and tools (the run side never parses it)
    weights.safetensors   the weights by name (absent for timing-only artifacts)
    payload/...           the backend's files: its plan, kernels, device description, ...
    tokenizer/...         optional: the model's tokenizer files (tokenizer.json, ...), for
                          text in / text out (`mlacc generate`)

Reading a file executes nothing in it: no pickle; pytree specs are JSON. Loading a `triton`
artifact to run it imports the Python kernel sources it carries (``payload/kernels``, checked
against the manifest's sha256, which guards against accidental change, not against a forged
file): load `triton` artifacts only from sources you trust, as you would a Python package.
Writing is atomic (temporary name in the same folder, then rename). Weights are written one
tensor at a time (a `LazyWeights` produces each one when it is reached), so saving a model
streamed from a checkpoint never holds the whole model in memory.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..fileio import atomic_output
from .errors import ArtifactError
from .lazy_weights import LazyWeights, StreamProgress
from .validate import check_manifest, check_weights

if TYPE_CHECKING:
    from .executable import Executable

FORMAT = "mlacc-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODULE = "module.mlir"
WEIGHTS = "weights.safetensors"
PAYLOAD_PREFIX = "payload/"
TOKENIZER_PREFIX = "tokenizer/"


@dataclass
class Artifact:
    """A compiled model: manifest, final MLIR, weights, the backend's payload files and,
    optionally, the model's tokenizer files."""

    manifest: dict[str, Any]
    mlir: str
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    payload: dict[str, bytes] = field(default_factory=dict)
    tokenizer: dict[str, bytes] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.manifest["target"]

    def payload_json(self, name: str) -> Any:
        """Parses payload file `name` as JSON (ArtifactError if absent or malformed)."""
        if name not in self.payload:
            raise ArtifactError(f"artifact has no payload file '{name}'")
        try:
            return json.loads(self.payload[name])
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ArtifactError(f"payload file '{name}' is not valid JSON: {err}") from None

    def save(self, path: str | os.PathLike[str], progress: StreamProgress | None = None) -> Path:
        """Writes the artifact to `path` atomically; returns the path. `progress(done_bytes,
        total_bytes, key)` is called after each weight written."""
        path = Path(path)
        with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(MANIFEST, json.dumps(self.manifest, indent=2, sort_keys=True))
            zf.writestr(MODULE, self.mlir)
            if self.weights:
                with zf.open(_aligned_member(zf), "w", force_zip64=True) as member:
                    write_safetensors(member, LazyWeights.of(self.weights), progress)
            for name, data in sorted(self.payload.items()):
                zf.writestr(PAYLOAD_PREFIX + name, data)
            for name, data in sorted(self.tokenizer.items()):
                zf.writestr(TOKENIZER_PREFIX + name, data)
        return path

    def load(self) -> Executable:
        """Makes this artifact runnable (same as saving it and `mlacc.runtime.load`); weights
        still on disk (a `LazyWeights`) are read into memory first."""
        from .executable import Executable

        if isinstance(self.weights, LazyWeights):
            self.weights = self.weights.materialize()
        return Executable(self)


ALIGN = 64  # bytes: where the weights' data starts in the file (cache lines, vector loads)
_ZIP64_EXTRA = 20  # the zip64 sizes zipfile adds to a forced-zip64 member's local header
_PAD_ID = 0xA11E  # an extra field that only pads


def _aligned_member(zf: zipfile.ZipFile) -> zipfile.ZipInfo:
    """The weights member's header, padded with an extra field so its data starts at an
    ALIGN-byte offset in the file."""
    info = zipfile.ZipInfo(WEIGHTS)
    info.compress_type = zipfile.ZIP_STORED
    start = zf.fp.tell() + 30 + len(WEIGHTS.encode()) + _ZIP64_EXTRA + 4
    pad = -start % ALIGN
    info.extra = _PAD_ID.to_bytes(2, "little") + pad.to_bytes(2, "little") + b"\0" * pad
    return info


# safetensors' names of the dtypes an artifact stores
_ST_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}


def write_safetensors(out: Any, weights: LazyWeights, progress: StreamProgress | None) -> None:
    """Writes `weights` in the safetensors format to the binary stream `out`, producing and
    writing one tensor at a time (the header comes first: it needs only shapes and dtypes)."""
    order = weights.order()
    header: dict[str, Any] = {}
    offset = 0
    for key in order:
        entry = weights.entries[key]
        name = str(entry.dtype).removeprefix("torch.")
        if name not in _ST_DTYPES:
            raise ArtifactError(f"weight '{key}' has dtype {name}, which an artifact cannot store")
        header[key] = {
            "dtype": _ST_DTYPES[name],
            "shape": list(entry.shape),
            "data_offsets": [offset, offset + entry.nbytes],
        }
        offset += entry.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    # the data starts ALIGN-byte aligned (safetensors asks for 8) so that, with the member
    # itself aligned (`_aligned_member`), tensors map in place
    text += b" " * (-(len(text) + 8) % ALIGN)
    out.write(len(text).to_bytes(8, "little"))
    out.write(text)
    for _key, tensor in weights.streamed(progress):
        flat = tensor.detach().contiguous().reshape(-1)
        if flat.numel():
            out.write(memoryview(flat.view(torch.uint8).numpy()))


def read_artifact(path: str | os.PathLike[str]) -> Artifact:
    """Reads and validates a `.mlacc` file; every defect is an ArtifactError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such artifact file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for required in (MANIFEST, MODULE):
                if required not in names:
                    raise ArtifactError(f"{path}: not an mlacc artifact (no '{required}')")
            manifest = _parse_manifest(path, _member(path, zf, MANIFEST))
            mlir = _member(path, zf, MODULE).decode("utf-8")
            weights = _map_weights(path, zf, zf.getinfo(WEIGHTS)) if WEIGHTS in names else {}
            payload, tokenizer = (
                {
                    n[len(prefix) :]: _member(path, zf, n)
                    for n in names
                    if n.startswith(prefix) and not n.endswith("/")
                }
                for prefix in (PAYLOAD_PREFIX, TOKENIZER_PREFIX)
            )
    except ArtifactError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,  # a member's compression method field names no known method
        RuntimeError,  # a member flagged as encrypted
    ) as err:
        raise ArtifactError(
            f"{path}: not an mlacc artifact, or truncated/corrupt ({err})"
        ) from None
    except UnicodeDecodeError:
        raise ArtifactError(f"{path}: corrupt artifact (module.mlir is not UTF-8)") from None
    try:
        check_manifest(manifest)
        check_weights(manifest, weights)
    except ArtifactError as err:
        raise ArtifactError(f"{path}: {err}") from None
    _check_listed(path, manifest, "payload", payload)
    _check_listed(path, manifest, "tokenizer", tokenizer)
    return Artifact(manifest, mlir, weights=weights, payload=payload, tokenizer=tokenizer)


def _parse_manifest(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path}: corrupt manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not an mlacc artifact (manifest format is not '{FORMAT}')")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise ArtifactError(f"{path}: manifest has no integer format_version")
    if version != FORMAT_VERSION:
        newer = "newer than" if version > FORMAT_VERSION else "older than"
        raise ArtifactError(
            f"{path}: artifact format version {version} is {newer} the version this mlacc "
            f"reads ({FORMAT_VERSION}); recompile the model with this mlacc"
        )
    for key, kind in (("target", str), ("executor", str), ("entry_points", dict)):
        if not isinstance(manifest.get(key), kind):
            raise ArtifactError(f"{path}: manifest field '{key}' is missing or malformed")
    return manifest


def _member(path: Path, zf: zipfile.ZipFile, name: str) -> bytes:
    """A member's bytes; a CRC mismatch names the member."""
    try:
        return zf.read(name)
    except zipfile.BadZipFile as err:
        if "CRC" in str(err):
            raise ArtifactError(
                f"{path}: corrupt artifact (member '{name}' fails its checksum)"
            ) from None
        raise


# safetensors' dtype names -> torch
_TORCH_DTYPES = {name: getattr(torch, dtype) for dtype, name in _ST_DTYPES.items()}
_CRC_CHUNK = 64 * 2**20


def _map_weights(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> dict[str, torch.Tensor]:
    """The weights member as tensors over a copy-on-write memory map of the file: nothing is
    read into the process but the header, the pages are the file's (shared, reclaimable) until
    a tensor is written to. The member's CRC is checked first, chunk by chunk."""
    import mmap

    if info.compress_type != zipfile.ZIP_STORED:
        raise ArtifactError(f"{path}: corrupt artifact ('{WEIGHTS}' is compressed)")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise ArtifactError(f"{path}: corrupt artifact ('{WEIGHTS}' has no local header)")
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little")
        start += int.from_bytes(local[28:30], "little")
        if start + info.file_size > os.path.getsize(path):
            raise ArtifactError(f"{path}: truncated artifact ('{WEIGHTS}' runs past the end)")
        if info.file_size == 0:
            raise ArtifactError(f"{path}: corrupt weights.safetensors (empty)")
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    view = memoryview(mapped)[start : start + info.file_size]
    crc = 0
    for at in range(0, len(view), _CRC_CHUNK):
        crc = zlib.crc32(view[at : at + _CRC_CHUNK], crc)
    if crc != info.CRC:
        raise ArtifactError(f"{path}: corrupt artifact (member '{WEIGHTS}' fails its checksum)")
    try:
        return _tensors(view, mapped, start)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RuntimeError) as err:
        raise ArtifactError(f"{path}: corrupt weights.safetensors ({err})") from None


def _tensors(view: memoryview, mapped: Any, start: int) -> dict[str, torch.Tensor]:
    """Parses a safetensors blob (`view`, at `start` in `mapped`) into tensors over `mapped`."""
    size = int.from_bytes(view[:8], "little")
    if not 0 < size <= len(view) - 8:
        raise ValueError(f"header size {size} does not fit the {len(view)}-byte file")
    header = json.loads(bytes(view[8 : 8 + size]))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    header.pop("__metadata__", None)
    data = start + 8 + size
    end = len(view) - 8 - size
    out = {}
    for key, entry in header.items():
        dtype = _TORCH_DTYPES[entry["dtype"]]
        shape = [int(d) for d in entry["shape"]]
        lo, hi = (int(x) for x in entry["data_offsets"])
        count = math.prod(shape)
        if not 0 <= lo <= hi <= end or hi - lo != count * dtype.itemsize:
            raise ValueError(f"tensor '{key}' has data offsets {lo}..{hi} for {dtype}{shape}")
        if count == 0:
            out[key] = torch.empty(shape, dtype=dtype)
            continue
        flat = torch.frombuffer(mapped, dtype=torch.uint8, count=hi - lo, offset=data + lo)
        tensor = flat.view(dtype).view(shape)
        # in place when aligned (our writer aligns the data; tensors of odd sizes shift the
        # ones after them), else a copy: generated code may assume aligned operands
        out[key] = tensor if (data + lo) % ALIGN == 0 else tensor.clone()
    return out


def _check_listed(path: Path, manifest: dict[str, Any], field: str, files: dict[str, bytes]):
    """Every file the manifest lists under `field` ("payload", "tokenizer") is present."""
    listed = manifest.get(field, [])
    if not isinstance(listed, list):
        raise ArtifactError(f"{path}: manifest field '{field}' is malformed")
    for name in listed:
        if name not in files:
            raise ArtifactError(f"{path}: {field} file '{name}' listed in the manifest is missing")
