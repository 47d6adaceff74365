"""metaanalysis: random-effects meta-analysis of clinical-trial evidence that agrees with metafor.

Public API
----------
pool, pool_many : pool one or many meta-analyses (see :mod:`metaanalysis.pooling`).
pool_mh, pool_peto : Mantel-Haenszel (OR, RR, RD) and Peto pooling of 2x2 tables (see :mod:`metaanalysis.binary`).
bayes           : exact Bayesian random-effects meta-analysis (see :mod:`metaanalysis.bayesian`).
MetaResult      : the frozen result type (see :mod:`metaanalysis.results`).
analysis.analyse / analysis.run_plan : a whole plan on a registry -> the typed Evidence tree.
"""

from .render.format import fmt_num, fmt_p


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("metaanalysis")
    except PackageNotFoundError:  # running from a source tree without install
        return "0.0.0+unknown"


def __getattr__(name):
    # Lazy so that `metaanalysis validate` imports neither scipy's optimisers nor
    # importlib.metadata (reading the installed distributions costs ~20 ms at every start).
    if name == "__version__":
        globals()["__version__"] = v = _package_version()
        return v
    if name == "MetaResult":  # numpy: `metaanalysis --help` and usage errors start without it
        from .results import MetaResult

        return MetaResult
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
