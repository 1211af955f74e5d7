"""Tools over the backend: the benchmark (`bench`), the OpInfo coverage sweep (`coverage`,
`coverage_report`, `coverage_results`), the rule checker (`check`), and the example workloads
behind the demo and the compile reports (`examples`).

Tools import the backend, never the other way round: no module outside this package imports
one of them at import time (the `dynamo-tape bench` command loads the benchmark when it runs).
"""
