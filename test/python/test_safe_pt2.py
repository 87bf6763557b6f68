"""`.pt2` inputs load without unpickling: hostile archives are refused before any code runs."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from mlacc.runtime.errors import CompileError
from mlacc.safe_pt2 import load_exported_program


class _Payload:
    """Unpickling this creates the file `marker`: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.makedirs, (str(self.marker),))


@pytest.fixture(scope="module")
def good_pt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pt2") / "linear.pt2"
    program = torch.export.export(torch.nn.Linear(4, 3), (torch.randn(2, 4),))
    torch.export.save(program, str(path))
    return path


def _rewrite(src: Path, dst: Path, edit: Callable[[str, bytes], bytes | None]) -> Path:
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for name in old.namelist():
            data = edit(name, old.read(name))
            if data is not None:
                new.writestr(name, data)
    return dst


def test_plain_pt2_loads(good_pt2: Path) -> None:
    program = load_exported_program(good_pt2)
    assert set(program.state_dict) == {"weight", "bias"}
    assert torch.load is not None and torch.load.__name__ == "load"  # the guard is undone


def test_use_pickle_weight_is_refused_before_unpickling(good_pt2: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"

    def edit(name: str, data: bytes) -> bytes:
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            config["config"]["weight"]["use_pickle"] = True
            return json.dumps(config).encode()
        if name.endswith("data/weights/weight_0"):
            return pickle.dumps(_Payload(marker))
        return data

    evil = _rewrite(good_pt2, tmp_path / "evil.pt2", edit)
    with pytest.raises(CompileError, match=r"weight 'weight' is stored pickled \(use_pickle"):
        load_exported_program(evil)
    assert not marker.exists()


def test_pickled_sample_inputs_run_no_code(good_pt2: Path, tmp_path: Path) -> None:
    """torch falls back to a full unpickler for sample inputs; the guard stops that."""
    marker = tmp_path / "code-ran"

    def edit(name: str, data: bytes) -> bytes:
        return pickle.dumps(_Payload(marker)) if name.endswith("sample_inputs/model.pt") else data

    evil = _rewrite(good_pt2, tmp_path / "evil.pt2", edit)
    with pytest.raises(CompileError, match="refusing to load: an entry is not plain tensor data"):
        load_exported_program(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda n, d: None if n.endswith("archive_format") else d, "no archive_format entry"),
        (
            lambda n, d: b"{not json" if n.endswith("model_constants_config.json") else d,
            "is not a JSON payload config",
        ),
        (
            lambda n, d: (
                b'{"config": {"obj": {"path_name": "custom_obj_0", "use_pickle": false}}}'
                if n.endswith("model_constants_config.json")
                else d
            ),
            "constant 'obj' is a pickled object",
        ),
    ],
)
def test_suspicious_archives_are_refused(
    good_pt2: Path, tmp_path: Path, edit: Callable, message: str
) -> None:
    bad = _rewrite(good_pt2, tmp_path / "bad.pt2", edit)
    with pytest.raises(CompileError, match=message):
        load_exported_program(bad)


def test_not_a_zip_is_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"\x80\x04not a zip")
    with pytest.raises(CompileError, match=r"not a \.pt2 archive"):
        load_exported_program(bad)
