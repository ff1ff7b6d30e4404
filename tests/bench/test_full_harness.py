"""The full-size harness runs its real code paths on the tiny twins ("dry" scale) on CPU."""

from __future__ import annotations

import statistics

import pytest

from nmm_bench import fullsize as fs
from nmm_bench import generation, inference_full, merged, qlora, train_full, train_step
from nmm_bench.harness import Row, ratio_verdict, round_order, round_rows, time_ratios


@pytest.mark.parametrize("family", ["qwen2_vl", "idefics3", "llava"])
def test_synthetic_batches_fit_the_model(family):
    import torch

    model, config = fs.build_model(family, "dry")
    batch = fs.collate(fs.make_items(family, config, "dry", 2))
    with torch.no_grad():
        out = model(**batch)
    assert out.loss is not None and torch.isfinite(out.loss)
    assert (batch["labels"] != fs.IGNORE).sum() == 2 * fs.ANSWER_TOKENS


def test_first_epoch_and_steady_state_rows_and_equal_losses_in_fp32():
    rows = train_full.run_rows("qwen2_vl", "dry", 2, 4, only=train_step.SMOKE_CONTENDERS)
    by = {r.label: r for r in rows}
    assert list(by) == [train_step.PLAIN, train_step.STEADY, train_step.FIRST_EPOCH]
    assert not [r.extra["error"] for r in rows if "error" in r.extra]
    warm, timed = train_full.WARM_STEPS, train_full.TIMED_STEPS
    for row in rows:  # the rate is the timed steps' examples over their seconds, the warm-up left out
        assert len(row.raw_seconds) == warm + timed
        assert row.value == pytest.approx(2 * timed / sum(row.raw_seconds[warm:]))
    # steady state: the first pass (warm x 2 examples) misses, every timed step is served by the cache
    assert (by[train_step.STEADY].extra["cache_misses"], by[train_step.STEADY].extra["cache_hits"]) == (
        2 * warm, 2 * timed)
    assert by[train_step.FIRST_EPOCH].extra["cache_hits"] is None  # no cache: the tower runs every step
    check = train_full.loss_agreement("qwen2_vl", "dry", 2, liger=False)
    assert check["max_abs_diff"] < 1e-4  # fp32 on CPU: the fast path's math is the plain loss


def test_train_step_summary_by_hand():
    def row(label, value, peak):
        return Row(label, value, "examples/s", extra={"peak_gib": peak})

    rows = [row(train_step.PLAIN, 28.0, 50.6), row(train_step.STEADY, 63.6, 19.7),
            row(train_step.FIRST_EPOCH, 36.5, 19.6)]
    assert train_step.summarise(rows) == {"first_epoch_ratio": 1.304, "steady_ratio": 2.271, "peak_gib": 19.7,
                                          "plain_peak_gib": 50.6}
    # no first-epoch row, or a failed one (value 0), is "not measured", never a ratio
    assert train_step.summarise(rows[:2])["first_epoch_ratio"] is None
    assert train_step.summarise([*rows[:2], row(train_step.FIRST_EPOCH, 0.0, 1.0)])["first_epoch_ratio"] is None
    assert train_step.summarise([row(r.label, r.value, float("nan")) for r in rows])["peak_gib"] is None  # CPU


def test_qlora_recipe_counts_the_uncached_first_epoch():
    # 1,200 at 10/s uncached (2 min) + 2 x 1,200 at 20/s cached (2 min): 4 min, not 3 x the cached 1 min
    assert qlora.recipe_minutes(10.0, 20.0) == pytest.approx(4.0)
    rows = [Row(qlora.PLAIN, 6.0, "examples/s", extra={"peak_gib": 16.7}),
            Row(qlora.CACHED, 20.0, "examples/s", extra={"peak_gib": 16.4}),
            Row(qlora.UNCACHED, 10.0, "examples/s", extra={"peak_gib": 17.0})]
    assert qlora.summarise(rows) == {"recipe_minutes": 4.0, "peak_gib": 17.0, "plain_recipe_minutes": 10.0}


def test_generation_times_nmm_evaluate_beside_plain_generate_at_each_batch():
    result = generation.run("dry")
    assert [r.label for r in result.rows] == ["one at a time", "plain batched generate (b=4, input order)",
                                              "nmm evaluate (b=4, length-sorted)",
                                              "plain batched generate (b=8, input order)",
                                              "nmm evaluate (b=8, length-sorted)"]
    for row in result.rows[1:]:  # value = prompts / the median round's seconds, not just "positive"
        assert len(row.raw_seconds) == result.settings["rounds"] == 3
        assert row.value == pytest.approx(result.settings["prompts"] / statistics.median(row.raw_seconds))
    assert result.checks["nmm evaluate (b=8, length-sorted): answers equal one-at-a-time (first 8)"] == "8/8"
    assert set(result.summary) >= {"equal_batch_ratio", "best_ratio"}


def test_generation_summary_by_hand():
    rows = [Row("one at a time", 2.0, "answers/s"),
            Row(generation.plain_label(16), 30.0, "answers/s"), Row(generation.nmm_label(16), 45.0, "answers/s"),
            Row(generation.plain_label(64), 50.0, "answers/s"), Row(generation.nmm_label(64), 80.0, "answers/s")]
    # equal batch at the default (16): 45 / 30; best is nmm at 64: 80 / 2, not nmm 80 / plain 30
    assert generation.summarise(rows, 16) == {"equal_batch_ratio": 1.5, "best_ratio": 40.0,
                                              "default_batch": 16, "best_batch": 64}


def test_full_size_generation_model_reads_the_stand_in_tokenizer_s_image_tokens():
    from nmm_bench.common_inputs import chart_examples, qwen2_vl_processor
    from nmm_core.chat import VlmCollator
    from nmm_core.families import get_family
    from nmm_core.fullsize import build_full_size

    model = build_full_size("qwen2_vl")  # meta device: no memory, no compute
    processor = qwen2_vl_processor()
    assert model.config.image_token_id != processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    generation.align_special_tokens(model, processor.tokenizer)
    batch = VlmCollator(processor, get_family("qwen2_vl"), train=False)(chart_examples(1, seed=0))
    assert int((batch["input_ids"] == model.config.image_token_id).sum()) == 432  # 504x672 / 28^2
    assert int((batch["input_ids"] == model.config.vision_start_token_id).sum()) == 1
    assert model.model.config.image_token_id == model.config.image_token_id  # the inner model reads it


def test_round_order_varies_who_runs_first_and_who_runs_before_whom():
    orders = [round_order(["a", "b", "c"], r) for r in range(6)]
    assert orders[:3] == [["a", "b", "c"], ["c", "b", "a"], ["b", "c", "a"]]
    assert sorted(map(tuple, orders)) == sorted(set(map(tuple, orders)))  # 6 rounds: all 6 orders
    assert {o[0] for o in orders[:3]} == {"a", "b", "c"}
    for label in "abc":
        before = {o[o.index(label) - 1] for o in orders[:5] if o.index(label)}
        assert len(before) == 2, (label, before)


def test_per_round_ratios_median_range_and_verdict_by_hand():
    # the machine slows down in round 2: both contenders feel it, so the ratio stays near 1
    seconds = {"base": [1.0, 2.0, 1.0], "merged": [1.01, 2.06, 0.99]}
    ratios = time_ratios(seconds, "merged", "base")
    assert ratios == pytest.approx([1.01, 1.03, 0.99])
    assert ratio_verdict(ratios, 1.02) == {"median": 1.01, "range": [0.99, 1.03], "target_met": True,
                                           "conclusive": False}  # 1.02 lies inside 0.99-1.03
    assert ratio_verdict([0.97, 1.0, 1.01], 1.02)["conclusive"] is True
    slow = ratio_verdict([1.05, 1.1, 1.2], 1.02)
    assert slow["median"] == 1.1 and not slow["target_met"] and slow["conclusive"]
    rows = round_rows(seconds, 10, "answers/s", "base")
    assert rows[0].value == 10.0 and rows[0].extra["min"] == 5.0 and rows[0].extra["max"] == 10.0
    assert rows[1].extra["time / base time, per round"] == [1.01, 1.03, 0.99]


def test_merged_inference_rounds_and_checks():
    result = inference_full.merged("qwen2_vl", "dry", rounds=2)
    assert [r.label for r in result.rows] == ["base", "base + unmerged adapter", "merged"]
    assert all(len(r.raw_seconds) == 2 and r.extra["min"] <= r.value <= r.extra["max"] for r in result.rows)
    by = {r.label: r.raw_seconds for r in result.rows}
    ratios = [m / b for m, b in zip(by["merged"], by["base"], strict=True)]  # from the raw times, by hand
    assert result.checks["merged_vs_base_median"] == pytest.approx(statistics.median(ratios), abs=1e-3)
    assert result.checks["merged_vs_base_range"] == pytest.approx([min(ratios), max(ratios)], abs=1e-3)
    assert result.checks["merged answers equal unmerged answers"] == "4/4"  # fp32 here


def test_merged_checks_by_hand():
    seconds = {"base": [1.0, 2.0, 1.0], "base + unmerged adapter": [1.5, 3.2, 1.4],
               "merged": [1.05, 2.1, 1.04]}
    out = merged.checks(seconds, ["a", "b"], ["a", "c"])
    # merged / base per round: 1.05, 1.05, 1.04 -> median 1.05, all above 1.02: missed, conclusively
    assert (out["merged_vs_base_median"], out["merged_vs_base_range"]) == (1.05, [1.04, 1.05])
    assert (out["target_met"], out["conclusive"]) == (False, True)
    assert (out["unmerged_vs_base_median"], out["unmerged_vs_base_range"]) == (1.5, [1.4, 1.6])
    assert out["merged answers equal unmerged answers"] == "1/2"
