"""Semantics of the `mlacc` core dialect: none are computed here.

`mlacc.weight` names a weight tensor that lives outside the IR; the runtime binds it from the
artifact's weights by its ``key``, so it has no function in the registry.
"""

from __future__ import annotations

# Ops that deliberately have no entry in SEMANTICS, with what supplies their value instead.
NO_SEMANTICS: dict[str, str] = {
    "mlacc.weight": "bound by the runtime from the artifact's weights (by its 'key' attribute)",
}
