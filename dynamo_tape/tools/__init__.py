"""Tools over the backend: the benchmark (`bench`, with `bench_models`, `bench_measure`,
`bench_report`), the model zoo's sweep (`zoo`, with `zoo_models`, `zoo_report`), the OpInfo
coverage sweep (`coverage`, with `coverage_sample`, `coverage_calls`, `coverage_results`,
`coverage_report`), the rule checker (`check`), and the example workloads behind the demo and
the compile reports (`examples`).

Tools import the backend, never the other way round: no module outside this package imports
one of them at import time (the `dynamo-tape bench` and `dynamo-tape zoo` commands load theirs
when they run).
"""
