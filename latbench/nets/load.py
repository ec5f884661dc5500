"""Reading networks in either arch.json form: explicit, or a search space's tokens.

The explicit form is decoded by `arch.py`, the tokens form by the space they belong to;
this module sits above both, so `arch.py` needs no search space.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latbench.errors import InputError
from latbench.fileio import load_json
from latbench.nets.arch import Arch, explicit_arch_from_dict, refuse_unknown, typed_field
from latbench.nets.spaces import SPACES

_TOKEN_FIELDS = {"name", "space", "tokens"}  # a network of a search space, by its tokens


def arch_from_dict(d: Any) -> Arch:
    """Decode and validate an arch.json object of either form; every error names its field."""
    if isinstance(d, dict) and ("tokens" in d or "space" in d):
        return _arch_from_tokens(d)
    return explicit_arch_from_dict(d)


def _arch_from_tokens(d: dict) -> Arch:
    """`{"space": "fbnet-cifar100", "tokens": "7-8-1-...", "name": ...}`: decode through the space."""
    refuse_unknown(d, _TOKEN_FIELDS, "arch (a network given by its tokens takes only these)")
    for req in ("space", "tokens"):
        if req not in d:
            raise InputError("a network given by its tokens needs both space and tokens", req)
    name = typed_field(d, "space", str, "")
    if name not in SPACES:
        raise InputError(f"unknown search space {name!r}; known: {', '.join(SPACES)}", "space")
    space = SPACES[name]
    raw = d["tokens"]
    if isinstance(raw, str):
        tokens = space.parse_tokens(raw, "tokens")
    elif isinstance(raw, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in raw):
        tokens = list(raw)
    else:
        raise InputError(
            f"expected a string like '7-8-1-...' or a list of ints, got {raw!r}", "tokens"
        )
    return space.decode(tokens, name=typed_field(d, "name", str, "", None))


def load_arch(path: str | Path) -> Arch:
    """Read arch.json; JSON errors and field errors both name the problem."""
    p = Path(path)
    d = load_json(p)
    try:
        return arch_from_dict(d)
    except InputError as exc:  # several files on one command line: say which one
        err = InputError(f"{p}: {exc}")
        err.field, err.file = exc.field, str(p)  # --json callers get both apart
        raise err from None
