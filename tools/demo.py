"""make demo: detect thaw slumps headless with qgis_process on a generated synthetic scene.

Generates one synthetic Sentinel-2-like scene (4 bands, uint16, 10 m; with its true RTS
polygons), runs ``qgis_process.bin run arctic_assist:detect_thaw_slumps`` against a
throw-away profile, and writes the proposals plus a PNG quicklook (yellow: truth,
red: proposals) into demo/ (or the folder given).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def main() -> int:
    from arctic_assist.io.quicklook import render
    from arctic_assist.training import synthetic
    from support import link_checkout_plugin, make_profile, qgis_env

    out = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "demo").resolve()
    out.mkdir(parents=True, exist_ok=True)
    raw, label, _ = synthetic.make_scene(synthetic.REGIONS["D"], size=512, seed=7)
    tif, truth = synthetic.write_scene(
        out, "demo_scene", raw, label, synthetic.geotransform(0, 512)
    )
    proposals = out / "demo_proposals.gpkg"
    if proposals.exists():
        proposals.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins"
        link_checkout_plugin(plugins)
        env = qgis_env(make_profile(Path(tmp) / "config"), plugins)
        cmd = [
            "qgis_process.bin",
            "run",
            "arctic_assist:detect_thaw_slumps",
            "--",
            f"INPUT={tif}",
            f"OUTPUT={proposals}",
            f"OUTPUT_PROBABILITY={out / 'demo_probability.tif'}",
        ]
        print("$", " ".join(cmd))
        proc = subprocess.run(cmd, env=env, text=True, capture_output=True)
        print(proc.stdout[-2000:])
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return proc.returncode
    png = render(
        tif,
        out / "demo_quicklook.png",
        bands=(3, 2, 1),
        overlays=[(truth, (255, 220, 0)), (proposals, (255, 40, 40))],
    )
    print(f"proposals: {proposals}\nquicklook: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
