"""Temporaries named by the run that writes them, and removed by a later run.

A run writes its outputs under hidden temporary names beside the final paths and renames
them at the end; on an error or Cancel it removes them itself. A *killed* run cannot, so
every temporary carries the writing process's id: ``.<stem>.aa<pid>-<token>.<tag><ext>``.
The next run writing to the same folder removes the temporaries of processes that no longer
exist (and nothing else: the name pattern is ours alone, and a live process's files stay).
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable

LOG = logging.getLogger(__name__)

_SIDECARS = ("", "-wal", "-shm", "-journal", ".aux.xml")


def temp_name(final: str, tag: str, token: str | None = None) -> str:
    """The hidden temporary beside ``final`` for this process (``tag``: part, prob, ...)."""
    folder, name = os.path.split(final)
    stem, ext = os.path.splitext(name)
    token = (token or uuid.uuid4().hex)[:8]
    return os.path.join(folder, f".{stem}.aa{os.getpid()}-{token}.{tag}{ext}")


def remove(path: str | None) -> None:
    """Remove a temporary and its sidecars (journal, WAL, ``.aux.xml``) where they exist."""
    if not path:
        return
    for p in (path + s for s in _SIDECARS):
        try:
            if os.path.exists(p):
                os.remove(p)
        except OSError:
            LOG.warning("could not remove temporary file %s", p)


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another run in this process (QGIS runs algorithms in threads)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def clean_stale(final: str, say: Callable[[str], None] | None = None) -> list[str]:
    """Remove temporaries for ``final`` left by runs whose process is gone; returns them."""
    folder, name = os.path.split(os.path.abspath(final))
    stem, _ = os.path.splitext(name)
    pattern = re.compile(rf"^\.{re.escape(stem)}\.aa(\d+)-[0-9a-f]{{8}}\.[a-z]+[.\w-]*$")
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for entry in names:
        m = pattern.match(entry)
        path = os.path.join(folder, entry)
        if not m or pid_alive(int(m.group(1))) or not os.path.isfile(path) or os.path.islink(path):
            continue
        try:
            os.remove(path)
        except OSError:
            LOG.warning("could not remove the stale temporary %s", path)
            continue
        removed.append(path)
    if removed and say is not None:
        say(f"Removed {len(removed)} temporary file(s) left by an interrupted run in {folder}.")
    return removed
