"""The evaluation harness: datasets, scorers, the runner, reports and the regression gate.

It measures any system through one small protocol, :class:`groundgate.evals.runner.Answerer`
(an async callable from an :class:`~groundgate.evals.dataset.EvalCase` to an
:class:`~groundgate.evals.runner.AnswerResult`), so it knows nothing about how answers are
produced: an app pipeline, a bare model, a remote gateway or a benchmark script.

- ``dataset``: the JSONL case format, validated line by line.
- ``scorers``: pure metric functions (exact match, token F1, rules, abstention, recall@k, MRR,
  nDCG@10, latency percentiles, cost).
- ``runner``: runs cases with bounded concurrency, scores and aggregates them; ``eval_command``
  does the work of ``groundgate eval``.
- ``report``: the JSON report, its round trip, the baseline comparison (gate) and the tables.
"""
