"""Build dist/arctic_assist-<version>.zip: the installable plugin folder, nothing else.

The zip holds one folder ``arctic_assist/`` with the package code, ``metadata.txt``,
``models/`` and ``resources/`` (no tests, no caches). Usage: python tools/package.py [DIST]
"""

from __future__ import annotations

import configparser
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 25 * 1024 * 1024
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".ckpt"}


def version() -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "metadata.txt", encoding="utf-8")
    return parser["general"]["version"]


def files_to_pack() -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = [(REPO / "metadata.txt", "arctic_assist/metadata.txt")]
    roots = [
        (REPO / "arctic_assist", "arctic_assist"),
        (REPO / "models", "arctic_assist/models"),
        (REPO / "resources", "arctic_assist/resources"),
    ]
    for root, prefix in roots:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_dir() or SKIP_DIRS.intersection(rel.parts) or path.suffix in SKIP_SUFFIXES:
                continue
            out.append((path, f"{prefix}/{rel.as_posix()}"))
    for extra in ("LICENSE", "CHANGELOG.md"):
        if (REPO / extra).is_file():
            out.append((REPO / extra, f"arctic_assist/{extra}"))
    return out


def build(dist: Path) -> Path:
    dist.mkdir(parents=True, exist_ok=True)
    target = dist / f"arctic_assist-{version()}.zip"
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path, arcname in files_to_pack():
            zf.write(path, arcname)
    size = tmp.stat().st_size
    if size > LIMIT_BYTES:
        tmp.unlink()
        raise SystemExit(f"{target.name} would be {size / 1e6:.1f} MB, over the 25 MB limit")
    tmp.replace(target)
    print(f"{target} ({size / 1e6:.2f} MB)")
    return target


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "dist")
