"""The `.mlacc` artifact: one zip file (stored, not compressed) with fixed members.

    manifest.json         format + version, mlacc version, target, executor, pipeline,
                          entry points (input/output signatures, pytree specs), weight list
    module.mlir           the final MLIR, for people and tools (the run side never parses it)
    weights.safetensors   the weights by name (absent for timing-only artifacts)
    payload/...           the backend's files: its plan, kernels, device description, ...

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
import os
import zipfile
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


@dataclass
class Artifact:
    """A compiled model: manifest, final MLIR, weights and the backend's payload files."""

    manifest: dict[str, Any]
    mlir: str
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    payload: dict[str, bytes] = field(default_factory=dict)

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
                with zf.open(WEIGHTS, "w", force_zip64=True) as member:
                    write_safetensors(member, LazyWeights.of(self.weights), progress)
            for name, data in sorted(self.payload.items()):
                zf.writestr(PAYLOAD_PREFIX + name, data)
        return path

    def load(self) -> Executable:
        """Makes this artifact runnable (same as saving it and `mlacc.runtime.load`); weights
        still on disk (a `LazyWeights`) are read into memory first."""
        from .executable import Executable

        if isinstance(self.weights, LazyWeights):
            self.weights = self.weights.materialize()
        return Executable(self)


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
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors writes it
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
            bad = zf.testzip()
            if bad is not None:
                raise ArtifactError(f"{path}: corrupt artifact (member '{bad}' fails its checksum)")
            names = set(zf.namelist())
            for required in (MANIFEST, MODULE):
                if required not in names:
                    raise ArtifactError(f"{path}: not an mlacc artifact (no '{required}')")
            manifest = _parse_manifest(path, zf.read(MANIFEST))
            mlir = zf.read(MODULE).decode("utf-8")
            weights = _load_weights(path, zf.read(WEIGHTS)) if WEIGHTS in names else {}
            payload = {
                n[len(PAYLOAD_PREFIX) :]: zf.read(n)
                for n in names
                if n.startswith(PAYLOAD_PREFIX) and not n.endswith("/")
            }
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
    _check_payload(path, manifest, payload)
    return Artifact(manifest=manifest, mlir=mlir, weights=weights, payload=payload)


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


def _load_weights(path: Path, blob: bytes) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return load(blob)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise ArtifactError(f"{path}: corrupt weights.safetensors ({err})") from None


def _check_payload(path: Path, manifest: dict[str, Any], payload: dict[str, bytes]) -> None:
    listed = manifest.get("payload", [])
    if not isinstance(listed, list):
        raise ArtifactError(f"{path}: manifest field 'payload' is malformed")
    for name in listed:
        if name not in payload:
            raise ArtifactError(f"{path}: payload file '{name}' listed in the manifest is missing")
