"""Enable the plugin in a QGIS profile's QGIS3.ini ([PythonPlugins] arctic_assist=true)."""

import configparser
import sys
from pathlib import Path


def enable(ini: Path, name: str = "arctic_assist") -> None:
    ini.parent.mkdir(parents=True, exist_ok=True)
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # keep QGIS's key case
    if ini.exists():
        parser.read(ini, encoding="utf-8")
    if not parser.has_section("PythonPlugins"):
        parser.add_section("PythonPlugins")
    parser.set("PythonPlugins", name, "true")
    with ini.open("w", encoding="utf-8") as fh:
        parser.write(fh, space_around_delimiters=False)


if __name__ == "__main__":
    enable(Path(sys.argv[1]))
