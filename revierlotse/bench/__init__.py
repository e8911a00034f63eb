"""Benchmarks: `make bench` compares Revierlotse with Rasa's stock configuration.

`revierlotse.bench.runner` is the entry point (`python -m revierlotse.bench --questions
FILE`); `contenders`, `serving`, `procfs`, `report` and `questions` are its parts, and
`loadgen` is the reusable closed-loop load generator (also used by `profile` and `soak`).
"""
