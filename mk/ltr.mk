# The QGIS 3.40 LTR test lane (issue 14, section 2). Included by the top-level Makefile.
#
#   make test-ltr    tests/qgis and tests/cli against this checkout inside a Debian 13 root
#                    with QGIS 3.40 (tools/ltr/run_ltr.sh); builds the root first if needed
#   make ltr-root    only build the root (or find it up to date)
#
# The root is cached in LTR_ROOT and rebuilt only when tools/ltr/recipe.sh or
# tools/ltr/requirements.txt change; mmdebstrap is installed with apt-get when missing.
# LTR_PYTEST_ARGS go to both pytests (e.g. LTR_PYTEST_ARGS="-x -k detect"). As root.

LTR_ROOT ?= /var/cache/arctic-assist/ltr-root
LTR_PYTEST_ARGS ?=

.PHONY: test-ltr ltr-root

test-ltr:
	LTR_ROOT=$(LTR_ROOT) tools/ltr/run_ltr.sh test $(LTR_PYTEST_ARGS)

ltr-root:
	LTR_ROOT=$(LTR_ROOT) tools/ltr/run_ltr.sh root
