"""Benchmarks: `make bench` compares Revierlotse with Rasa's stock configuration.

`revierlotse.bench.loadgen` is the reusable closed-loop load generator;
`revierlotse.bench.runner` trains, starts, measures and reports (`python -m revierlotse.bench`).
"""
