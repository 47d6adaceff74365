"""metaanalysis: random-effects meta-analysis of clinical-trial evidence that agrees with metafor.

Public API
----------
pool, pool_many : pool one or many meta-analyses (see :mod:`metaanalysis.pooling`).
pool_mh, pool_peto : Mantel-Haenszel (OR, RR, RD) and Peto pooling of 2x2 tables (see :mod:`metaanalysis.binary`).
bayes           : exact Bayesian random-effects meta-analysis (see :mod:`metaanalysis.bayesian`).
MetaResult      : the frozen result type (see :mod:`metaanalysis.results`).
analysis.analyse / analysis.run_plan : a whole plan on a registry -> the typed Evidence tree.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("metaanalysis")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

from .render.format import fmt_num, fmt_p  # noqa: E402
from .results import MetaResult  # noqa: E402


def __getattr__(name):
    # Lazy so that `metaanalysis validate` does not import scipy's optimisers.
    if name in ("pool", "pool_many"):
        from . import pooling

        return getattr(pooling, name)
    if name in ("pool_mh", "pool_peto"):
        from . import binary

        return getattr(binary, name)
    if name == "bayes":
        from .bayesian import bayes

        return bayes
    raise AttributeError(name)


__all__ = ["MetaResult", "pool", "pool_many", "pool_mh", "pool_peto", "bayes", "fmt_num", "fmt_p", "__version__"]
