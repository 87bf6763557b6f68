"""Source locations of ops as users read them: ``file:line:col``."""

from __future__ import annotations

import re

from ._mlir import ir

_FILE_LOC = re.compile(r'"((?:[^"\\]|\\.)*)":(\d+):(\d+)')


def format_location(loc: ir.Location | str) -> str:
    """``file:line:col`` of the first file location inside `loc` (callsites, fused and named
    locations included); empty when there is none."""
    m = _FILE_LOC.search(str(loc))
    return f"{m.group(1)}:{m.group(2)}:{m.group(3)}" if m else ""
