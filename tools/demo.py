"""make demo: detect thaw slumps headless with qgis_process on the shipped sample image.

Runs ``qgis_process.bin run arctic_assist:detect_thaw_slumps`` with the bundled model on
``resources/sample/peel_s2_bgrn_10m.tif`` (a real Sentinel-2 crop of the Peel Plateau,
MIT, see the README beside it) against a throw-away profile, and writes the proposals
GeoPackage, the probability GeoTIFF and a PNG quicklook (red: proposals) into demo/ (or
the folder given). ``--synthetic`` runs on a generated synthetic scene instead (yellow:
its true slumps).
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

    args = [a for a in sys.argv[1:] if a != "--synthetic"]
    out = Path(args[0] if args else REPO / "demo").resolve()
    out.mkdir(parents=True, exist_ok=True)
    overlays = []
    if "--synthetic" in sys.argv[1:]:
        raw, label, _ = synthetic.make_scene(synthetic.REGIONS["D"], size=512, seed=7)
        tif, truth = synthetic.write_scene(
            out, "demo_scene", raw, label, synthetic.geotransform(0, 512)
        )
        overlays.append((truth, (255, 220, 0)))
    else:
        tif = REPO / "resources" / "sample" / "peel_s2_bgrn_10m.tif"
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
        overlays=[*overlays, (proposals, (255, 40, 40))],
    )
    print(f"proposals: {proposals}\nquicklook: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
