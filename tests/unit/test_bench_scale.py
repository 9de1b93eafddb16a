"""The scaling benchmark's fit (benchmarks/bench_scale.py): the growth exponent of a stage is the log-log slope."""

import pytest

from benchmarks.bench_scale import exponents, growth_exponent


def test_growth_exponent_is_the_log_log_slope():
    sizes = [1_000, 3_000, 10_000]
    assert growth_exponent(sizes, [2.0 * n for n in sizes]) == pytest.approx(1.0)
    assert growth_exponent(sizes, [5e-6 * n**2 for n in sizes]) == pytest.approx(2.0)
    assert growth_exponent(sizes, [7.0, 7.0, 7.0]) == pytest.approx(0.0, abs=1e-12)


def test_memory_growth_is_fitted_above_the_import_baseline():
    sizes = [1_000, 10_000]
    rows = {"s": {n: {"seconds": n / 100, "peak_mib": 400 + n / 10, "base_mib": 400} for n in sizes}}
    e = exponents(sizes, rows)["s"]
    assert e["seconds"] == pytest.approx(1.0) and e["grown_mib"] == pytest.approx(1.0)
    assert e["peak_mib"] < 0.5  # the fixed 400 MiB of imports hides the growth in the total


def test_readme_table_extrapolates_seconds_and_marginal_memory_linearly():
    from benchmarks.bench_scale import markdown

    sizes = [1_000, 10_000]
    rows = {"s": {n: {"seconds": n / 100, "peak_mib": 1024 + n * 1024 / 10_000, "base_mib": 1024} for n in sizes}}
    last = markdown(sizes, rows, exponents(sizes, rows), target=100_000).splitlines()[-1]
    # 100 s x 10; 2 GiB at 10k + 1 GiB per 10k users x 90k more = 11 GiB
    assert last == "| s | 10 / 1.10 | 100 / 2.00 | 1.00 | 0.26 | 1.00 | 1,000 / 11 |"
