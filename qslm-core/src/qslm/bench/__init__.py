"""Benchmark harnesses: QUBO solvers on instance files (:mod:`qslm.bench.solvers`, with
best-known values from :mod:`qslm.bench.best_known`) and attention estimators
(:mod:`qslm.bench.attention`). Used by ``qslm bench`` and the scripts in ``benchmarks/``."""
