"""The digits experiment's pieces on tiny configurations, its cache, and its command line.

The experiment itself (``scripts/label_noise_digits.py``, a few minutes) is not run here; the
committed results it wrote (``book/_data/label_noise_digits.json``, read by the book) are
checked for being made with the default configuration and for agreeing with themselves.
"""

from __future__ import annotations

import importlib.util
import io
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import torch.nn.functional as F  # noqa: E402

from sampy.label_noise import digits  # noqa: E402
from sampy.label_noise.hessian import top_hessian_eigenvalue  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "book" / "_data" / "label_noise_digits.json"
TINY = digits.DigitsConfig(
    noise_levels=(0.0, 0.4), seeds=(0,), methods=("SGD", "SAM", "J-SAM"), epochs=2, hidden=16
)


@pytest.fixture(scope="module")
def data() -> digits.DigitsData:
    return digits.load_digits_data()


@pytest.fixture(scope="module")
def small(data) -> digits.DigitsData:
    """200 training and 100 test images: enough to exercise every piece quickly."""
    return digits.DigitsData(
        data.train_inputs[:200],
        data.train_labels[:200],
        data.test_inputs[:100],
        data.test_labels[:100],
    )


def test_the_split_is_fixed_and_scaled(data):
    assert data.train_inputs.shape == (1258, 64) and data.test_inputs.shape == (539, 64)
    assert float(data.train_inputs.min()) == 0.0 and float(data.train_inputs.max()) == 1.0
    assert set(data.test_labels.tolist()) == set(range(10))
    again = digits.load_digits_data()
    assert torch.equal(again.test_labels, data.test_labels)


def test_the_mlp_is_seeded_and_leaves_the_global_generator_alone():
    state = torch.random.get_rng_state()
    a, b = digits.make_mlp(8, seed=3), digits.make_mlp(8, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(a[0].weight, digits.make_mlp(8, seed=4)[0].weight)


@pytest.mark.parametrize("method", digits.METHODS)
def test_every_method_trains_and_reports(small, method):
    config = replace(TINY, methods=(method,))
    record = digits.train_one(method, 0.4, 0, config, small)
    assert len(record["test_accuracy"]) == config.epochs + 1
    assert all(0.0 <= a <= 1.0 for a in record["test_accuracy"])
    assert record["best_accuracy"] == max(record["test_accuracy"])
    assert 0.0 <= record["memorised"] <= 1.0 and 0.0 <= record["clean_fit"] <= 1.0
    assert math.isfinite(record["sharpness"]) and not record["diverged"]
    again = digits.train_one(method, 0.4, 0, config, small)
    assert again["test_accuracy"] == record["test_accuracy"]  # seeded
    assert again["sharpness"] == pytest.approx(record["sharpness"], rel=1e-6)


def test_without_noise_nothing_is_memorised_and_a_divergence_is_reported(small):
    record = digits.train_one("SGD", 0.0, 1, TINY, small)
    assert math.isnan(record["memorised"])
    exploding = replace(TINY, lr=1e30, momentum=0.0)
    record = digits.train_one("SGD", 0.4, 0, exploding, small)
    assert record["diverged"] and math.isnan(record["sharpness"])
    # A saturated network (every ReLU off, softmax one-hot): the Hessian-vector products
    # vanish, ARPACK cannot start, and the sharpness is reported as NaN, not raised.
    model = digits.make_mlp(8, 0)
    with torch.no_grad():
        model[0].bias.fill_(-1e3)
        model[2].bias.copy_(torch.tensor([1e4] + [0.0] * 9))
    assert math.isnan(
        top_hessian_eigenvalue(model, F.cross_entropy, small.train_inputs, small.train_labels)
    )


def test_run_experiment_summary_and_progress(small):
    stream = io.StringIO()
    results = digits.run_experiment(TINY, stream=stream, data=small)
    assert len(results["runs"]) == 2 * 1 * 3
    assert "6/6" in stream.getvalue()
    assert torch.get_num_threads() >= 1
    rows = results["summary"]
    assert [(r["noise"], r["method"]) for r in rows] == [
        (n, m) for n in (0.0, 0.4) for m in ("SGD", "SAM", "J-SAM")
    ]
    for row in rows:
        group = [
            r for r in results["runs"] if (r["noise"], r["method"]) == (row["noise"], row["method"])
        ]
        assert row["best_accuracy"] == pytest.approx(np.mean([r["best_accuracy"] for r in group]))
    cells = digits.table_rows(rows)
    assert cells[0][0] == "SGD" and cells[0][1] == "0%" and cells[0][4] == "—"


def test_results_round_trip_through_json_and_the_cache_is_reused(small, tmp_path, monkeypatch):
    results = digits.run_experiment(TINY, progress=False, data=small)
    path = digits.save_results(results, tmp_path / "r.json")
    assert "NaN" not in path.read_text()  # strict JSON: NaN is written as null
    loaded = digits.load_results(path)
    assert math.isnan(loaded["summary"][0]["memorised"])
    assert loaded["runs"][0]["test_accuracy"] == results["runs"][0]["test_accuracy"]

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(digits, "run_experiment", must_not_run)
    assert digits.load_or_run(path, TINY)["runs"] == loaded["runs"]
    other = replace(TINY, epochs=3)
    monkeypatch.setattr(digits, "run_experiment", lambda config, **kw: {"config": config.as_dict()})
    assert digits.load_or_run(path, other)["config"]["epochs"] == 3  # re-run, then cached
    assert digits.load_results(path)["config"]["epochs"] == 3


def test_config_validation():
    with pytest.raises(ValueError, match="methods"):
        digits.DigitsConfig(methods=("SGD", "Adam"))
    with pytest.raises(ValueError, match="noise_levels"):
        digits.DigitsConfig(noise_levels=(1.5,))
    with pytest.raises(ValueError, match="epochs"):
        digits.DigitsConfig(epochs=0)


def test_the_committed_results_are_the_default_run_and_agree_with_themselves():
    results = digits.load_results(CACHE)
    assert results["config"] == digits.load_results(CACHE)["config"]
    default = digits._unplain(digits._plain(digits.DEFAULT.as_dict()))
    assert results["config"] == default, "re-run scripts/label_noise_digits.py"
    config = digits.DEFAULT
    assert len(results["runs"]) == len(config.noise_levels) * len(config.seeds) * len(
        config.methods
    )
    fresh = digits.summarize(results["runs"])
    for row, again in zip(results["summary"], fresh, strict=True):
        for key, value in row.items():
            if isinstance(value, str):
                assert again[key] == value
            elif math.isnan(value):
                assert math.isnan(again[key]), key
            else:
                assert again[key] == pytest.approx(value, rel=1e-12), key
    for run in results["runs"]:
        assert not run["diverged"] and math.isfinite(run["sharpness"])
        assert len(run["test_accuracy"]) == config.epochs + 1


def _script():
    spec = importlib.util.spec_from_file_location(
        "label_noise_digits", ROOT / "scripts" / "label_noise_digits.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_command_line(tmp_path, monkeypatch, capsys):
    script = _script()
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--help"])
    assert exit_info.value.code == 0
    assert "--full" in capsys.readouterr().out
    tiny = replace(TINY, noise_levels=(0.2,), methods=("SGD",), epochs=1)
    monkeypatch.setattr(digits, "DEFAULT", tiny)
    out = tmp_path / "digits.json"
    assert script.main(["--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "SGD" in printed and "1 runs" in printed
    assert digits.load_results(out)["config"]["epochs"] == 1
