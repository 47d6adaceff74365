"""Shared by the tests that compare the C kernel (metaanalysis/_kernel.c, _kernel_cv.c) with the
numpy code it stands in for (test_kernel.py, test_bayes_kernel.py): importing ``kernel_is_built``
into a test module makes every test there fail, not skip, when the kernel is not built."""

from __future__ import annotations

import pytest

from metaanalysis import _compiled


@pytest.fixture(autouse=True)
def kernel_is_built():
    assert _compiled.LIB is not None, (
        "the C kernel metaanalysis/_kernel.c is not built: run `pip install -e .` (make does)")


def numpy_path(fn, monkeypatch):
    """``fn()`` with the kernel switched off: the numpy code's result."""
    with monkeypatch.context() as mp:
        mp.setattr(_compiled, "LIB", None)
        return fn()
