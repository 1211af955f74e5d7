"""The benchmark's report: every table has a row per model, the targets table says which
targets a run met, and numbers from several processes are combined as medians of each
process's own ratios. Timings are not asserted (a benchmark is not a test)."""

import torch

from dynamo_tape.tools import bench_measure, bench_models, bench_report


def test_report_has_each_table_with_a_row_per_model():
    spec = bench_models.Model(
        "tiny MLP",
        lambda: bench_models.WideMLP((4, 8, 3)),
        bench_models.classification_batch(2, 4, 3),
    )
    backends = bench_measure.BACKENDS
    run = bench_measure.summarize(
        bench_measure.bench_model(spec, backends, rounds=1, budget_s=0.001)
    )
    assert set(run) == {*backends, bench_measure.DYNAMO_ALONE}
    assert all(s.step_s > 0 and s.inference_s > 0 and s.first_call_s > 0 for s in run.values())
    hit = run["tape"].hit  # the tape again, its graphs from the cache, beside Dynamo alone
    assert hit.first_call_s > 0 and hit.alone_first_call_s > 0
    # the time inside the backend is part of the first call
    assert 0 < hit.backend_s < hit.first_call_s
    assert 0 < run["tape"].backend_s < run["tape"].first_call_s
    # the model is the same and the tape saves what eager saves for it
    assert run["tape"].saved_bytes == run["eager"].saved_bytes > 0

    text = bench_report.report({spec.name: [run]}, backends, rounds=1, command="test")
    sections = text.split("\n## ")[1:]
    assert [s.splitlines()[0] for s in sections] == [
        "Steady state: time over eager's (median)",
        "First call: compile + first forward and backward (median)",
        "Saved for backward (KiB)",
        "Targets",
    ]
    for section in sections:
        table = [line for line in section.splitlines() if line.startswith("|")]
        assert table[2].startswith("| tiny MLP"), section
        # a row per model; the targets' own row: the compile cost's median over the models
        assert len(table) == (4 if section.startswith("Targets") else 3), section
    targets = sections[-1]
    for column, _ in bench_report.TARGETS.values():
        assert column in targets


def test_processes_combine_as_the_median_of_their_own_ratios():
    def process(eager, tape, aot_first, tape_first):
        def summary(step, first):
            hit = bench_measure.CacheHit(first, 0.5, 0.005)
            return bench_measure.Summary(step, 2 * step, first, 100, 0.1 * first, hit)

        return {
            "eager": summary(eager, 1.0),
            "aot_eager": summary(eager, aot_first),
            bench_measure.DYNAMO_ALONE: summary(eager, 0.5),
            "tape": summary(tape, tape_first),
        }

    # the median of each process's ratio, not the ratio of the medians (1.6 / 1.5, 1.0 / 2.0)
    runs = [process(1.0, 0.9, 2.0, 0.8), process(2.0, 1.6, 4.0, 2.4), process(1.5, 1.8, 1.0, 1.0)]
    assert abs(bench_report._ratio(runs, "tape", "step_s") - 0.9) < 1e-12
    assert abs(bench_report._ratio(runs, "tape", "inference_s") - 0.9) < 1e-12
    assert abs(bench_report._first_call_ratio(runs, "tape") - 0.6) < 1e-12
    # the tape's own cost over Dynamo alone's first call: 0.6, 3.8, 1.0
    assert abs(bench_report._compile_cost(runs) - 1.0) < 1e-12
    assert abs(bench_report._in_backend(runs) - 0.2) < 1e-12  # 0.16, 0.48, 0.2
    assert abs(bench_report._in_backend_on_hit(runs) - 0.01) < 1e-12
    assert abs(bench_report._hit_cost(runs) - 1.0) < 1e-12  # (0.8, 2.4, 1.0) less 0.5, over it
    table = bench_report.targets_table({"m": runs})
    row = table.splitlines()[2]
    assert "yes (0.900;" in row and "no (1.000)" in row and "yes (0.010 in the backend" in row


def test_probes_table_times_the_step_with_each_probe_option():
    spec = bench_models.Model(
        "tiny MLP",
        lambda: bench_models.WideMLP((4, 8, 3)),
        bench_models.classification_batch(2, 4, 3),
    )
    steps = bench_measure.bench_probes(spec, rounds=1, budget_s=0.001)
    names = ["eager", *(f"tape {p}" for p in bench_measure.PROBES)]
    assert list(steps) == names and all(s > 0 for s in steps.values())
    table = bench_report.probes_table([steps, steps])
    rows = [line for line in table.splitlines() if line.startswith("|")][2:]
    assert [r.split("|")[1].strip() for r in rows] == names
    assert rows[1].split("|")[-2].strip() == "1.00"  # tape off over tape off
    run = bench_measure.summarize(
        bench_measure.bench_model(spec, bench_measure.BACKENDS, rounds=1, budget_s=0.001)
    )
    text = bench_report.report(
        {spec.name: [run]}, bench_measure.BACKENDS, 1, "test", (spec.name, [steps])
    )
    assert text.split("\n## ")[-1].startswith("Probes: the step with each probe option (tiny MLP)")


def test_the_model_zoo_entries_run_or_say_why_not():
    found, missing = bench_models.zoo_models()
    names = {m.name.removesuffix(" (model zoo)") for m in found} | {
        n.removesuffix(" (model zoo)") for n in missing
    }
    assert names == set(bench_models.ZOO_MODELS)
    assert all(why for why in missing.values())
    for spec in found[:1]:  # builds, and its forward on its batch is a loss to train
        model = spec.make()
        loss = model(*spec.batch(model, torch.Generator().manual_seed(0)))
        assert loss.dim() == 0 and loss.requires_grad
    text = bench_report._missing_part({"lib/model (model zoo)": "lib does not import"})
    assert text.strip() == "Not run here: lib/model (model zoo): lib does not import."
