"""Every docstring example of the measuring and reporting modules runs as written."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import prunekit.bench
import prunekit.report

MODULES = sorted(
    f"{pkg.__name__}.{m.name}" for pkg in (prunekit.bench, prunekit.report)
    for m in pkgutil.iter_modules(pkg.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                          verbose=False)
    assert res.failed == 0, f"{res.failed} docstring example(s) of {name} failed"
