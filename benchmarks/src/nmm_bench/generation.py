"""Benchmark 3: our evaluator against one-at-a-time and plain batched `generate`."""

from __future__ import annotations

import time

from nmm_bench.common_inputs import require_size, variable_prompts
from nmm_bench.harness import Result, Row


def run(size: str) -> Result:
    """Answers per second of each way; in fp32 batched greedy tokens must equal one-at-a-time."""
    import torch

    from nmm_core.chat import VlmCollator
    from nmm_core.evaluate import GenerationSettings, generate
    from nmm_core.models import load_model
    from nmm_core.task import Task

    require_size(size)
    if size == "full":
        from nmm_bench import inference_full

        return inference_full.generation("qwen2_vl", "full")
    n, new_tokens, batch = 32, 8, 16
    loaded = load_model("tiny-qwen2-vl", dtype="float32", padding_side="left")
    model, family, processor = loaded.model.eval(), loaded.family, loaded.processor
    task = Task(instruction="")
    examples = variable_prompts(n)
    collate = VlmCollator(processor, family, train=False)
    pad = collate.tokenizer.pad_token_id

    def plain(chunk):
        inputs = collate(chunk)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 do_sample=False, pad_token_id=pad)
        return out[:, inputs["input_ids"].shape[1]:].tolist()

    def timed_run(fn):
        fn()  # warm-up
        t0 = time.perf_counter()
        result = fn()
        return result, time.perf_counter() - t0

    one, t_one = timed_run(lambda: [plain([ex])[0] for ex in examples])
    batched, t_batched = timed_run(
        lambda: [row for i in range(0, n, batch) for row in plain(examples[i:i + batch])])
    settings = GenerationSettings(batch_size=batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    ours, t_ours = timed_run(lambda: generate(model, processor, family, examples, task=task,
                                              settings=settings, progress=False))
    strip = [collate.tokenizer.decode(t, skip_special_tokens=True).strip() for t in one]
    identical = sum(a == b for a, b in zip(one, batched, strict=True))
    same_text = sum(a == b for a, b in zip(strip, ours[0], strict=True))
    # fp32 batched greedy decoding must not change a single token (a padding bug would)
    assert identical == n, f"batched tokens differ from one-at-a-time in {n - identical} of {n}"
    assert same_text == n, f"our evaluator's answers differ in {n - same_text} of {n}"
    return Result(
        name="generation", size=size, reference="one at a time",
        settings={"model": "tiny-qwen2-vl", "dtype": "float32", "prompts": n, "batch": batch,
                  "new_tokens": f"{new_tokens}, forced", "prompt_lengths": "variable (0-3 filler sentences)"},
        rows=[Row("one at a time", n / t_one, "answers/s", [t_one]),
              Row(f"plain batched generate (b={batch})", n / t_batched, "answers/s", [t_batched]),
              Row(f"nmm evaluate (b={batch}, length-sorted)", n / t_ours, "answers/s", [t_ours],
                  {"seconds_inside_generate": ours[1]})],
        checks={"fp32 batched == one-at-a-time tokens": f"{identical}/{n}",
                "nmm answers == one-at-a-time": f"{same_text}/{n}"},
    )
