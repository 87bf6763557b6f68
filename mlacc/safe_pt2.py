"""Loading `.pt2` files (``torch.export.save``) without running code from them.

``torch.export.load`` unpickles parts of the archive: weights and constants whose config says
``"use_pickle": true`` (with ``weights_only=False``), custom and opaque objects, the sample
inputs when the weights-only unpickler refuses them, and the legacy archive layout. A pickle can
run any code, so a hostile `.pt2` would run its payload before any check of ours.

`load_exported_program` refuses such archives up front, with an error naming the entry, and
loads the rest with every unpickling forced through torch's weights-only unpickler (tensors and
plain containers only): whatever slips past the scan still cannot execute code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .runtime.errors import CompileError

_WEIGHTS_CONFIG = "data/weights/model_weights_config.json"
_CONSTANTS_CONFIG = "data/constants/model_constants_config.json"
# Constants stored with pickle whatever their config says (torchbind and opaque objects).
_PICKLED_CONSTANT_PREFIXES = ("custom_obj", "opaque_obj")
_GUARD_LOCK = threading.Lock()


class _Refused(Exception):
    """An unpickling that the guard stopped."""


def load_exported_program(path: Path) -> Any:
    """`torch.export.load(path)` for archives with no pickled entry.

    Raises:
        CompileError: the file is not a `.pt2` archive, holds a pickled entry (named), or does
            not load.
    """
    problem = pickled_entry(path)
    if problem.startswith("not a "):
        raise CompileError(f"{path}: cannot load the exported program ({problem})")
    if problem:
        raise CompileError(f"{path}: refusing to load: {problem} (unpickling can run code)")
    import torch

    export_log = logging.getLogger("torch.export")
    level = export_log.level
    export_log.setLevel(logging.CRITICAL)  # torch logs its own traceback before raising
    try:
        with _weights_only_unpickling():
            program = torch.export.load(str(path))
        _check_program(program)
        return program
    except _Refused as err:
        raise CompileError(f"{path}: refusing to load: {err} (unpickling can run code)") from None
    except Exception as err:  # noqa: BLE001 - any unreadable .pt2 is one error line
        lines = str(err).strip().splitlines()
        detail = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
        raise CompileError(f"{path}: cannot load the exported program ({detail})") from None
    finally:
        export_log.setLevel(level)


def _check_program(program: Any) -> None:
    """The parts of the program the importer reads are there (torch's deserializer accepts an
    archive whose call signature or graph signature is missing or inconsistent)."""
    if not hasattr(program, "module_call_graph"):
        raise ValueError(f"the archive's model is a {type(program).__name__}, not a program")
    if not program.module_call_graph or program.module_call_graph[0].signature is None:
        raise ValueError("the exported program has no call signature")
    program.call_spec  # noqa: B018 - raises for an inconsistent signature
    program.validate()


def pickled_entry(path: Path) -> str:
    """What in the archive at `path` would be unpickled ("" if nothing, as far as the configs
    tell), or why it is not a `.pt2` archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            root = _archive_root(names)
            if root is None:
                return "not a torch.export archive (no archive_format entry; legacy or foreign)"
            for config_name, folder in ((_WEIGHTS_CONFIG, "weight"), (_CONSTANTS_CONFIG, "")):
                problem = _config_problem(archive, root + config_name, folder)
                if problem:
                    return problem
            legacy = [n for n in names if n.startswith(root + "data/") and n.endswith("/model.pt")]
            legacy = [n for n in legacy if "/sample_inputs/" not in n]
            if legacy:
                return f"entry '{legacy[0]}' is a pickled legacy weight file"
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        return f"not a .pt2 archive ({err})"
    return ""


def _archive_root(names: list[str]) -> str | None:
    for name in names:
        if name.endswith("archive_format") and name.count("/") <= 1:
            return name[: -len("archive_format")]
    return None


def _config_problem(archive: zipfile.ZipFile, name: str, folder: str) -> str:
    if name not in archive.namelist():
        return ""
    try:
        config = json.loads(archive.read(name)).get("config", {})
    except (ValueError, AttributeError, UnicodeDecodeError):
        return f"entry '{name}' is not a JSON payload config"
    if not isinstance(config, dict):
        return f"entry '{name}' is not a JSON payload config"
    for key, meta in config.items():
        if not isinstance(meta, dict):
            return f"entry '{name}' is not a JSON payload config"
        if meta.get("use_pickle"):
            return f"{folder or 'constant'} '{key}' is stored pickled (use_pickle: true)"
        if str(meta.get("path_name", "")).startswith(_PICKLED_CONSTANT_PREFIXES):
            return f"constant '{key}' is a pickled object ({meta.get('path_name')})"
    return ""


@contextlib.contextmanager
def _weights_only_unpickling() -> Iterator[None]:
    """While active, `torch.load` only runs the weights-only unpickler, and the archive
    reader's other unpicklers (`pickle.loads`, torchbind objects) refuse."""
    import torch
    from torch.export.pt2_archive import _package

    real_load = torch.load

    def weights_only_load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # protocol notes about the refused pickle
                return real_load(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - the weights-only unpickler met non-data
            raise _Refused(f"an entry is not plain tensor data ({type(err).__name__})") from None

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise _Refused("an entry is a pickled object")

    class _NoPickle:
        loads = staticmethod(refuse)
        load = staticmethod(refuse)

    with _GUARD_LOCK:
        saved = (torch.load, _package.pickle, torch._C._pickle_load_obj)
        torch.load, _package.pickle, torch._C._pickle_load_obj = (
            weights_only_load,
            _NoPickle,
            refuse,
        )
        try:
            yield
        finally:
            torch.load, _package.pickle, torch._C._pickle_load_obj = saved
