"""Build of the optional C kernel ``metaanalysis._kernel`` (everything else is in pyproject.toml).

``optional=True``: without a C compiler the install still succeeds and
:mod:`metaanalysis._compiled` falls back to the numpy engine. ``-ffp-contract=off`` keeps
a * b + c two IEEE operations (no fused multiply-add), as numpy computes them.
"""

import sys

from setuptools import Extension, setup

FLAGS = [] if sys.platform == "win32" else ["-ffp-contract=off", "-fno-math-errno"]

setup(ext_modules=[Extension("metaanalysis._kernel", ["metaanalysis/_kernel.c", "metaanalysis/_kernel_cv.c"],
                             extra_compile_args=FLAGS, optional=True)])
