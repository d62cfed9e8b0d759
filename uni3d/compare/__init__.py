"""Batch comparisons: methods x prompts x seeds, run resumably (locally or on Ray), scored and reported.

    spec.py       the batch (YAML spec or flags), run keys and the config of every run
    executors.py  where runs execute: this process, a local process pool, Ray tasks
    results.py    one row per run, the finished marker (evaluation.json), results.csv
    stats.py      per-method means with bootstrap 95% intervals, diversity, markdown tables
    report.py     metrics.png, report.md, summary.json and the self-contained report.html
    batch.py      ``uni3d compare``: CompareConfig and compare()
"""
