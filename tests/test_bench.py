"""The benchmark's report: every table has a row per model, and the targets table says which
targets a run met. Timings are not asserted (a benchmark is not a test)."""

from dynamo_tape import bench


def test_report_has_each_table_with_a_row_per_model():
    spec = bench.Model(
        "tiny MLP", lambda: bench.WideMLP((4, 8, 3)), bench._classification_batch(2, 4, 3)
    )
    backends = bench.BACKENDS
    results = {spec.name: bench.bench_model(spec, backends, rounds=1, budget_s=0.001)}
    runners = results[spec.name]
    assert set(runners) == {*backends, bench.DYNAMO_ALONE}
    assert all(r.step_s and r.inference_s and r.first_call_s > 0 for r in runners.values())
    # the model is the same and the tape saves what eager saves for it
    assert runners["tape"].saved_bytes == runners["eager"].saved_bytes > 0

    text = bench.report(results, backends, rounds=1, command="test")
    sections = text.split("\n## ")[1:]
    assert [s.splitlines()[0] for s in sections] == [
        "Steady state: time over eager's (median)",
        "First call: compile + first forward and backward (median)",
        "Saved for backward (KiB)",
        "Issue 6's targets",
    ]
    for section in sections:
        table = [line for line in section.splitlines() if line.startswith("|")]
        assert len(table) == 3 and table[2].startswith("| tiny MLP"), section
    targets = sections[-1]
    assert "first call tape/aot_eager <= 0.50" in targets
    assert f"{bench.DYNAMO_ALONE} " in targets.splitlines()[-1]
