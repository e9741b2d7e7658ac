"""Reading training checkpoints without running code from them.

A ``.ckpt`` is a pickle: read with ``torch.load(weights_only=False)`` a crafted file runs
whatever its ``__reduce__`` says. Every checkpoint this package reads goes through
:func:`load_checkpoint_file`, which uses PyTorch's restricted unpickler
(``weights_only=True``): tensors, containers and primitive types only, plus the few
Lightning classes listed in :data:`SAFE_GLOBALS`. Anything else is refused with a message
naming what the file asked for; nothing from the file is executed.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely (or at all); ``str()`` is the message."""


def _safe_globals() -> list[Any]:
    """Classes a Lightning checkpoint of ours may hold beyond tensors and primitives."""
    extra: list[Any] = []
    try:  # save_hyperparameters() may store an AttributeDict (a plain dict subclass)
        from lightning.fabric.utilities.data import AttributeDict

        extra.append(AttributeDict)
    except ImportError:  # pragma: no cover - lightning is a training dependency
        pass
    return extra


SAFE_GLOBALS = _safe_globals()


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """The content of a checkpoint (a dict), read weights-only on the CPU.

    Raises :class:`CheckpointError` when the file is missing, is not a PyTorch checkpoint,
    or would need anything but weights and plain data to be read (e.g. a crafted file that
    runs code): such a file is refused before any of its code can run.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint '{p}' does not exist")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(str(p))
        except Exception:  # only for the message
            names = []
        what = ", ".join(names[:5]) or str(exc).splitlines()[0][:200]
        raise CheckpointError(
            f"checkpoint '{p}' was refused: reading it would build or run objects other than "
            f"weights ({what}). Arctic Assist reads checkpoints weights-only and never runs "
            "code from a file; use the exported .onnx model, or a checkpoint written by "
            "Arctic Assist's training."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint '{p}' is not a PyTorch checkpoint that can be read "
            f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})."
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"checkpoint '{p}' holds a {type(obj).__name__}, not a "
            "checkpoint dictionary (state_dict)."
        )
    return obj
