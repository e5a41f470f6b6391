"""The renamed public names still work for one release, each with a ``DeprecationWarning``.

``sampy.optim.seed004`` / ``sampy.torch.seed004`` became ``msam_schedule_free``, and the class
and registry row ``SeedAdamWMSAMSF`` became ``NotesAdamWMSAMScheduleFree`` (the formula of the
Momentum-SAM-ScheduleFree notes, taken literally). The old names resolve to the new objects
and warn, naming the replacement; they are listed nowhere (``__all__``, the registry, the
laboratory's metadata and its JavaScript twins). The class names of the anatomy notes' code,
``SAMMAGNITUDE`` and ``SAMDIRECTION``, name the opposite of what the classes do: they resolve
with a warning that says so, and are listed nowhere.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

import sampy
import sampy.optim
from sampy import lab_metadata
from sampy.optim import msam_schedule_free

ROOT = Path(__file__).resolve().parents[1]
OLD, NEW = "SeedAdamWMSAMSF", "NotesAdamWMSAMScheduleFree"


def _fresh_import(name: str):
    """Import ``name`` anew (a cached module would not run its warning again)."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_old_numpy_module_warns_and_reexports_the_new_classes():
    with pytest.warns(DeprecationWarning, match=r"sampy\.optim\.msam_schedule_free") as record:
        old = _fresh_import("sampy.optim.seed004")
    assert any("sampy.optim.seed004" in str(w.message) for w in record)
    assert old.SeedAdamWMSAMSF is msam_schedule_free.NotesAdamWMSAMScheduleFree
    assert old.NotesAdamWMSAMScheduleFree is msam_schedule_free.NotesAdamWMSAMScheduleFree
    assert old.AdamWMSAMScheduleFree is msam_schedule_free.AdamWMSAMScheduleFree
    assert old.SeedState is msam_schedule_free.NotesAdamWMSAMScheduleFreeState


def test_old_numpy_class_name_warns_and_is_the_new_class():
    with pytest.warns(DeprecationWarning, match=NEW) as record:
        cls = sampy.optim.SeedAdamWMSAMSF
    assert cls is sampy.optim.NotesAdamWMSAMScheduleFree
    # The warning points at the line that used the old name, not at sampy's internals.
    assert record[0].filename == __file__
    with pytest.warns(DeprecationWarning, match=NEW):
        from sampy.optim import SeedAdamWMSAMSF
    assert SeedAdamWMSAMSF is msam_schedule_free.NotesAdamWMSAMScheduleFree


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchOptimizer"):
        _ = sampy.optim.NoSuchOptimizer


def test_old_registry_name_warns_and_gives_the_new_row():
    with pytest.warns(DeprecationWarning, match=NEW) as record:
        row = sampy.variant(OLD)
    assert row is sampy.variant(NEW)
    assert row.name == NEW and row.cls is sampy.optim.NotesAdamWMSAMScheduleFree
    assert record[0].filename == __file__


def test_aliases_are_listed_nowhere():
    assert OLD not in sampy.optim.__all__ and NEW in sampy.optim.__all__
    assert OLD not in dir(sampy.optim)
    names = [row.name for row in sampy.variants()]
    assert OLD not in names and names.count(NEW) == 1
    assert OLD not in sampy.table_html() and OLD not in sampy.hyperparameters_html()
    document = lab_metadata.metadata()
    assert OLD not in {v["name"] for v in document["variants"]} | set(document["classes"])
    assert NEW in set(document["classes"])
    assert OLD not in (ROOT / "lab" / "src" / "optim" / "index.js").read_text(encoding="utf-8")
    assert not (ROOT / "lab" / "src" / "optim" / "seed004.js").exists()


def test_old_torch_names_warn_and_are_the_new_ones():
    pytest.importorskip("torch")
    import sampy.torch
    from sampy.torch import msam_schedule_free as torch_msf

    with pytest.warns(DeprecationWarning, match=r"sampy\.torch\.msam_schedule_free"):
        old = _fresh_import("sampy.torch.seed004")
    assert old.SeedAdamWMSAMSF is torch_msf.NotesAdamWMSAMScheduleFree
    assert old.AdamWMSAMScheduleFree is torch_msf.AdamWMSAMScheduleFree
    with pytest.warns(DeprecationWarning, match=NEW):
        cls = sampy.torch.SeedAdamWMSAMSF
    assert cls is sampy.torch.NotesAdamWMSAMScheduleFree
    assert OLD not in sampy.torch.__all__ and NEW in sampy.torch.__all__
    assert sampy.variant(NEW).twin() is torch_msf.NotesAdamWMSAMScheduleFree


@pytest.mark.parametrize("name", ["SAME", "CustomSAME", "SAMCkpt"])
def test_old_ratio_mode_warns_and_runs_as_the_new_one(name):
    """``ratio_mode="seed_code"`` is now ``"notes_code"``: same steps, one warning, not listed."""
    row = sampy.variant(name)
    f = sampy.functions.get("rosenbrock")
    x0 = np.array([[-1.0, 1.5], [0.5, -0.5]])
    with pytest.warns(DeprecationWarning, match="notes_code") as record:
        old = row.cls(sampy.optim.SGD(lr=1e-3), ratio_mode="seed_code")
    assert record[0].filename == __file__
    new = row.make(sampy.optim.SGD(lr=1e-3), ratio_mode="notes_code")
    np.testing.assert_array_equal(sampy.run(old, f, x0, 20).xs, sampy.run(new, f, x0, 20).xs)
    spec = next(s for s in row.hyperparameters if s.name == "ratio_mode")
    assert spec.choices == ("sign_safe", "notes_code")
    with pytest.raises(ValueError):
        row.make(sampy.optim.SGD(lr=1e-3), ratio_mode="no_such_mode")


def test_old_ratio_mode_of_the_torch_twins_warns():
    torch = pytest.importorskip("torch")
    params = [torch.zeros(3, requires_grad=True)]
    with pytest.warns(DeprecationWarning, match="notes_code"):
        opt = sampy.variant("SAME").make_twin(params, lr=0.1, ratio_mode="seed_code")
    assert opt.descent.mode == "notes_code"


SWAPPED = {"SAMMAGNITUDE": "SAMDirection", "SAMDIRECTION": "SAMMagnitude"}


@pytest.mark.parametrize(
    "side", ["sampy.optim", "sampy.optim.swaps", "sampy.torch", "sampy.torch.swaps"]
)
@pytest.mark.parametrize("alias", sorted(SWAPPED))
def test_swapped_alias_names_warn_what_they_are_and_are_listed_nowhere(side, alias):
    """``SAMMAGNITUDE`` is SAMDirection (the notes' code swaps the names): it warns and says so."""
    if side.startswith("sampy.torch"):
        pytest.importorskip("torch")
    module = importlib.import_module(side)
    new = SWAPPED[alias]
    with pytest.warns(DeprecationWarning, match="opposite of what it does") as record:
        cls = getattr(module, alias)
    assert cls is getattr(module, new)
    message = str(record[0].message)
    assert new in message and "anatomy of SAM's gradient" in message
    assert record[0].filename == __file__
    assert alias not in getattr(module, "__all__", ()) and alias not in dir(module)
