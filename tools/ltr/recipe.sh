# The QGIS 3.40 LTR root (Debian 13 "trixie") that tools/ltr/run_ltr.sh builds with mmdebstrap.
# This file and requirements.txt are the root's recipe: their hash is kept in the root's stamp
# file, and the next run rebuilds the root when either changes. Sourced by run_ltr.sh.

LTR_SUITE=trixie
LTR_MIRROR=http://deb.debian.org/debian
# QGIS 3.40 from Debian, with Debian's numpy 2 (QGIS's GDAL bindings need it); the venv
# below takes the rest from PyPI
LTR_PACKAGES=(
  qgis python3-qgis qgis-providers xvfb xauth python3-venv python3-pip python3-numpy
  ca-certificates
)
# inside the root: a venv over Debian's python3 (PEP 668: pip refuses the system one), with
# --system-site-packages so PyQGIS, GDAL and numpy stay Debian's
LTR_VENV=/opt/aa-venv
