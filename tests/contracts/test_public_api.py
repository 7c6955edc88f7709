"""The public face: every exported name resolves, old spellings warn once and still work, and
importing prunekit changes nothing outside it (no matplotlib backend switch)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import prunekit as pk

SRC = Path(__file__).resolve().parents[2] / "src"


def test_every_exported_name_resolves():
    assert [n for n in pk.__all__ if not hasattr(pk, n)] == []
    assert len(set(pk.__all__)) == len(pk.__all__)


@pytest.mark.parametrize("old", sorted(pk._DEPRECATED))
def test_old_spellings_warn_and_resolve(old):
    module, attr, _ = pk._DEPRECATED[old]
    with pytest.warns(DeprecationWarning, match=f"prunekit.{old} is deprecated"):
        obj = getattr(pk, old)
    assert obj is getattr(__import__(module, fromlist=[attr]), attr)
    assert old not in pk.__all__


def test_one_name_per_concept():
    from prunekit.llm import magnitude_prune, sparsegpt_prune, wanda_prune  # noqa: F401
    import prunekit.recover.recipe as recipe

    with pytest.warns(DeprecationWarning):
        assert recipe.Target is pk.TargetSpec
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pk.run_recipe is not None and pk.TargetSpec is not None


def test_import_has_no_side_effects():
    code = ("import matplotlib; before = matplotlib.get_backend(); import prunekit, sys; "
            "import prunekit.report.plots, prunekit.recover.sensitivity, prunekit.recover.slimming; "
            "assert matplotlib.get_backend() == before, matplotlib.get_backend(); "
            "assert 'matplotlib.pyplot' not in sys.modules")
    env = {"PYTHONPATH": str(SRC), "MPLBACKEND": "svg", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_facade_source_speaks_of_stages_not_work_items():
    text = (SRC / "prunekit" / "__init__.py").read_text()
    assert "issue" not in text.lower()
