"""GILL with the tiny twin (tiny OPT + tiny CLIP + tiny SD), offline: train, caption, generate,
retrieve through the CLI; save/load round trip; clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from nmm_memes.cli import main

SYNTH = ["--synthetic-seed", "3", "--synthetic-trainval-size", "8", "--synthetic-test-size", "2",
         "--synthetic-image-size", "56"]
TRAIN = ["--model", "tiny-gill", "--train-epochs", "5", "--train-batch-size", "4", "--train-lr", "3e-3",
         "--train-logging-steps", "1", "--train-save-steps", "1000", "--train-warmup", "0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short GILL training run on 8 synthetic memes, one of them without its image (skipped and
    listed in the run): (run folder, synthetic folder)."""
    root = tmp_path_factory.mktemp("gill")
    synth = root / "synth"
    assert main(["data", "synthesize", *SYNTH, "--out", str(synth), "--no-progress"]) == 0
    first = json.loads((synth / "memes-trainval.json").read_text())[0]
    (synth / "images" / first["img_fname"]).unlink()
    data = ["--data-source", str(synth), "--data-images", str(synth / "images")]
    assert main(["train", *data, *TRAIN, "--output-dir", str(root / "runs")]) == 0
    (run,) = (root / "runs").iterdir()
    return run, synth


def test_gill_train_writes_adapter_with_parts_and_loss_goes_down(trained):
    run, _ = trained
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "complete" and status["summary"]["examples"] == 7
    skipped = [json.loads(line) for line in (run / "problems-train.jsonl").read_text().splitlines()]
    assert [p["id"] for p in skipped] == ["syntr3x00000"]
    adapter = run / "adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors", "nmm_adapter.json", "gill_parts.safetensors"):
        assert (adapter / name).is_file(), name
    assert json.loads((adapter / "nmm_adapter.json").read_text())["family"] == "opt_clip"
    losses = [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(losses) == 10 and sum(losses[-3:]) < 0.85 * sum(losses[:3])


def test_gill_caption_generate_retrieve_through_the_cli(trained, tmp_path, capsys):
    run, synth = trained
    adapter = str(run / "adapter")
    images = sorted((synth / "images").glob("*.png"))
    capsys.readouterr()
    assert main(["predict", "--model", "tiny-gill", "--adapter", adapter, str(images[0])]) == 0
    caption = capsys.readouterr().out.strip()
    assert caption and "\n" not in caption and "[IMG" not in caption

    out = tmp_path / "gen.png"
    assert main(["generate", "--model", "tiny-gill", "--adapter", adapter, "--steps", "1", "--guidance", "1",
                 "--out", str(out), "a sunny scene with the words PIZZA and NICE"]) == 0
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == (64, 64)  # the tiny SD: 8 x 8 latents

    capsys.readouterr()
    assert main(["retrieve", "--model", "tiny-gill", "--adapter", adapter, "--top", "3",
                 "a storm scene", *map(str, images[:3])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    scores = [float(line.split()[0]) for line in lines]
    assert len(lines) == 3 and scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)


def test_gill_save_load_round_trip_gives_equal_outputs(tmp_path):
    import torch

    from nmm_core.lora import LoraSettings, apply_lora
    from nmm_core.workflows import ModelSettings
    from nmm_memes.gill.collate import pad
    from nmm_memes.gill.generate import load_gill
    from nmm_memes.gill.parts import load_parts
    from nmm_memes.gill.persist import fresh_model, save_gill
    from nmm_memes.gill.settings import GillSettings

    model_settings, settings = ModelSettings(model="tiny-gill"), GillSettings()
    parts = load_parts(model_settings, settings)
    peft_lm = apply_lora(parts.loaded, LoraSettings(r=4, alpha=8, dropout=0.0))
    model = fresh_model(parts, peft_lm)
    torch.manual_seed(0)
    with torch.no_grad():  # LoRA's B starts at zero: move it so the round trip carries something
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.eval()
    tok = parts.tokenizer
    ids, mask = pad([tok("a red fire")["input_ids"] + list(range(model.spec.first_img, model.spec.first_img + 8))],
                    tok.pad_token_id)
    pixels = torch.rand(1, 3, 56, 56)
    with torch.no_grad():
        before = model.encode_captions(ids, mask), model.logits(model.hidden(model.embed(ids), mask)), \
            model.image_retrieval(pixels)
    save_gill(model, peft_lm, tmp_path / "adapter", base_name="tiny-gill")
    loaded = load_gill(model_settings, settings, str(tmp_path / "adapter"), with_sd=False).model
    with torch.no_grad():
        after = loaded.encode_captions(ids, mask), loaded.logits(loaded.hidden(loaded.embed(ids), mask)), \
            loaded.image_retrieval(pixels)
    torch.testing.assert_close(after[0][0], before[0][0], atol=1e-5, rtol=1e-4)  # SD conditioning
    torch.testing.assert_close(after[0][1], before[0][1], atol=1e-5, rtol=1e-4)  # retrieval embedding
    torch.testing.assert_close(after[1], before[1], atol=1e-4, rtol=1e-4)  # logits, [IMG] rows included
    torch.testing.assert_close(after[2], before[2])


def test_gill_bad_inputs_give_clear_errors(trained, tmp_path, capsys):
    run, synth = trained
    image = str(next((synth / "images").glob("*.png")))
    capsys.readouterr()
    assert main(["train", "--model", "no-such-model", "--output-dir", str(tmp_path)]) == 2
    assert "unknown preset 'no-such-model'" in capsys.readouterr().err
    assert main(["eval", "--model", "tiny-gill", "--output-dir", str(tmp_path)]) == 2
    assert "for GILL use predict" in capsys.readouterr().err
    data = ["--data-source", str(synth), "--data-images", str(synth / "images")]
    assert main(["train", *data, *TRAIN, "--train-gradient-checkpointing", "--output-dir", str(tmp_path)]) == 2
    assert "does not checkpoint" in capsys.readouterr().err  # refused, not silently ignored

    other = tmp_path / "other-base"
    shutil.copytree(run / "adapter", other)
    marker = json.loads((other / "nmm_adapter.json").read_text())
    (other / "nmm_adapter.json").write_text(json.dumps({**marker, "base": "facebook/opt-6.7b",
                                                        "base_fingerprint": "0123456789abcdef"}))
    assert main(["predict", "--model", "tiny-gill", "--adapter", str(other), image]) == 2
    assert "was trained for base 'facebook/opt-6.7b'" in capsys.readouterr().err

    (other / "gill_parts.safetensors").unlink()  # e.g. a TinyLLaVA adapter
    assert main(["generate", "--model", "tiny-gill", "--adapter", str(other), "a cat"]) == 2
    assert "is not a GILL adapter" in capsys.readouterr().err
    assert main(["generate", "--model", "tiny-gill", "--out", str(tmp_path / "x.jpg"), "a cat"]) == 2
    assert "give a .png file name" in capsys.readouterr().err
    assert main(["retrieve", "--model", "tiny-gill", "a cat", image, str(tmp_path / "none.png")]) == 2
    assert f"record 'retrieve' field 'image': no such file {tmp_path / 'none.png'}" in capsys.readouterr().err


def test_gill_batch_is_cpu_only_and_one_step_reaches_every_trained_part():
    """The collator only tokenizes (data-loader workers cannot use CUDA); the model computes SD's
    target itself, and one backward gives a gradient to LoRA and to each of GILL's parts."""
    import torch

    from nmm_core.lora import LoraSettings, apply_lora
    from nmm_core.records import Example
    from nmm_core.workflows import ModelSettings
    from nmm_memes.gill.collate import GillCollator
    from nmm_memes.gill.model import PARTS
    from nmm_memes.gill.parts import load_parts
    from nmm_memes.gill.persist import fresh_model
    from nmm_memes.gill.settings import GillSettings

    parts = load_parts(ModelSettings(model="tiny-gill"), GillSettings())
    model = fresh_model(parts, apply_lora(parts.loaded, LoraSettings(r=4, alpha=8))).train()
    examples = [Example(f"m{i}", Image.new("RGB", (40, 40), (60 * i, 90, 30)), "", (f"a picture number {i}",))
                for i in range(3)]
    collator = GillCollator(parts.tokenizer, parts.image_processor, parts.sd.tokenizer,
                            first_img=model.spec.first_img, img_tokens=model.spec.img_tokens)
    batch = collator(examples)
    assert all(v.device.type == "cpu" for v in batch.values())
    assert batch["sd_ids"].dtype == torch.long and batch["sd_ids"].shape == (3, model.spec.sd_tokens)
    assert not model.text_encoder.training and not any(p.requires_grad for p in model.text_encoder.parameters())

    out = model(**batch)
    assert set(out) == {"loss", "cap_loss", "gen_lm_loss", "gen_mse", "ret_loss"}
    out["loss"].backward()
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert {n.split(".")[0] for n in trained} == {*PARTS, "lm"}
    assert any("lora_" in n for n in trained)
    no_grad = [n for n, p in trained.items() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert no_grad and all(".lora_A." in n for n in no_grad), no_grad  # LoRA's B starts at zero: A's grad is 0


def test_gill_backward_is_bit_identical_run_to_run_on_cpu_threads():
    """The same batch gives bit-identical gradients every time with two CPU threads: the [IMG] rows were
    read by tensor indexing, whose CPU backward adds a row's repeated uses with atomics in no fixed
    order (in a batch of 16, a different `img_tokens` gradient on every call), so one seed gave
    another loss from run to run."""
    import random

    import torch

    from nmm_core.lora import LoraSettings, apply_lora
    from nmm_core.records import Example
    from nmm_core.workflows import ModelSettings
    from nmm_memes.gill.collate import GillCollator
    from nmm_memes.gill.parts import load_parts
    from nmm_memes.gill.persist import fresh_model
    from nmm_memes.gill.settings import GillSettings

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        parts = load_parts(ModelSettings(model="tiny-gill"), GillSettings())
        model = fresh_model(parts, apply_lora(parts.loaded, LoraSettings(r=4, alpha=8))).train()
        rng = random.Random(0)
        words = "a fire sunny rainy scene with the words cat dog".split()
        examples = [Example(f"m{i}", Image.new("RGB", (56, 56), (rng.randrange(256), 90, 30)), "",
                            (" ".join(rng.choices(words, k=rng.randrange(3, 12))),)) for i in range(16)]
        batch = GillCollator(parts.tokenizer, parts.image_processor, parts.sd.tokenizer,
                             first_img=model.spec.first_img, img_tokens=model.spec.img_tokens)(examples)
        grads = []
        for _ in range(4):
            model.zero_grad(set_to_none=True)
            model(**batch)["loss"].backward()
            grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    finally:
        torch.set_num_threads(threads)
    assert "img_tokens" in grads[0]
    changed = {n for later in grads[1:] for n, g in later.items() if not torch.equal(g, grads[0][n])}
    assert not changed, changed


@pytest.mark.slow
def test_gill_training_with_the_same_seed_is_bit_identical_in_two_processes(tmp_path):
    """The new parts (LoRA, [IMG] rows, mapper) are drawn under the run's seed, and the loss is summed
    in a fixed order: the same seed in two processes (without --deterministic) saves the same adapter
    and parts and logs the same losses; another seed gives others. Batches of 16, where the [IMG]
    rows' old indexing backward summed in a different order each run."""
    from nmm_core.testing.processes import largest_difference, run_all

    synth = tmp_path / "synth"
    assert main(["data", "synthesize", *SYNTH, "--synthetic-trainval-size", "40", "--out", str(synth),
                 "--no-progress"]) == 0
    data = ["--data-source", str(synth), "--data-images", str(synth / "images")]
    outs = {name: tmp_path / name for name in ("a", "b", "other")}
    run_all([("nmm_memes.cli", "train", *data, *TRAIN, "--train-batch-size", "16", "--train-max-steps", "3",
              "--train-seed", seed, "--output-dir", str(outs[name]))
             for name, seed in (("a", "4"), ("b", "4"), ("other", "5"))])
    runs = [next(out.iterdir()) for out in outs.values()]
    assert largest_difference(runs[0] / "adapter", runs[1] / "adapter") == 0.0
    assert largest_difference(runs[0] / "adapter", runs[2] / "adapter") > 1e-3
    losses = [[r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
              for run in runs]
    summary = [json.loads((run / "status.json").read_text())["summary"]["train_loss"] for run in runs]
    assert len(losses[0]) == 3 and losses[0] == losses[1] and summary[0] == summary[1]
    assert losses[0][1:] != losses[2][1:] and summary[0] != summary[2]


@pytest.mark.slow
def test_gill_train_eval_generate_limit_captions_that_many_validation_memes(tmp_path, monkeypatch):
    """`--train-eval-generate-limit K` with GILL (as with a chat VLM): at each validation the first K
    validation memes are captioned, at most max_new_tokens each, and eval_<ROUGE-L> of those captions
    against their image captions is logged (it crashed: the callback called a chat VLM's `generate`)."""
    from nmm_memes.cli import MEMES
    from nmm_memes.gill.collate import training_caption
    from nmm_memes.gill.generate import Gill

    calls = []
    real = Gill.caption

    def caption(self, picture, max_new_tokens):
        said = real(self, picture, max_new_tokens)
        calls.append((picture.tobytes(), max_new_tokens, said))
        return said

    monkeypatch.setattr(Gill, "caption", caption)
    synth = tmp_path / "synth"
    assert main(["data", "synthesize", *SYNTH, "--synthetic-trainval-size", "40", "--out", str(synth),
                 "--no-progress"]) == 0
    data = ["--data-source", str(synth), "--data-images", str(synth / "images")]
    assert main(["train", *data, *TRAIN, "--train-max-steps", "4", "--train-eval-steps", "2",
                 "--train-eval-generate-limit", "2", "--train-keep-best", "metric", "--train-save-steps", "2",
                 "--output-dir", str(tmp_path / "runs")]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    key = f"eval_{MEMES.task.primary}"
    logged = [r[key] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if key in r]
    assert len(logged) == 2 and len(calls) == 4 and {limit for _, limit, _ in calls} == {48}
    weights = json.loads((run / "status.json").read_text())["summary"]["weights"]
    assert weights["reason"].startswith(f"best {key}") and weights["step"] == (4 if logged[1] > logged[0] else 2)

    from nmm_core.records import load_image
    from nmm_memes.data import MemeDataSettings, load_memes

    held = load_memes(MemeDataSettings(source=str(synth), images=str(synth / "images")), "validation").kept[:2]
    assert [c[0] for c in calls[2:]] == [load_image(ex).tobytes() for ex in held]
    said = [MEMES.task.normalise(c[2]) for c in calls[2:]]
    expected = MEMES.task.score(said, [[training_caption(ex)] for ex in held])[MEMES.task.primary]
    assert logged[1] == pytest.approx(expected)


def test_gill_parts_file_with_a_foreign_spec_is_refused_by_name(tmp_path):
    import torch
    from safetensors.torch import save_file

    from nmm_core.errors import DataError
    from nmm_memes.gill.persist import PARTS_FILE, SPEC_KEY, read_spec

    save_file({"x": torch.zeros(1)}, str(tmp_path / PARTS_FILE), metadata={SPEC_KEY: json.dumps({"bogus": 1})})
    with pytest.raises(DataError, match=f"{PARTS_FILE}: metadata '{SPEC_KEY}' is not a GILL spec"):
        read_spec(tmp_path)


def test_gill_offline_with_its_parts_uncached_is_one_line_naming_the_missing_part_before_any_run(
        hf_cache, tmp_path, capsys, monkeypatch):
    """`--model gill` loads OPT, CLIP and SD1.5 from the hub itself: core checks each up front (the family
    declares them), as it checks a preset's model, instead of failing inside a made run folder."""
    from types import SimpleNamespace

    from nmm_core.diffusion import SD15_REPO, SD15_REVISION
    from nmm_core.workflows import ModelSettings, check_model_source
    from nmm_memes.gill.settings import CLIP_L14, OPT_6_7B, GillSettings

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runs = tmp_path / "runs"
    missing = [("--gill-lm", OPT_6_7B, "config.json"), ("--gill-vision", CLIP_L14, "config.json"),
               ("--gill-sd", f"{SD15_REPO}' at revision {SD15_REVISION}", "model_index.json")]
    for flag, hub_id, first in missing:  # each cached in turn: the next part is the one named
        assert main(["train", "--model", "gill", "--output-dir", str(runs)]) == 2
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert "Traceback" not in err
        assert last.startswith(f"error: --model gill ({flag}): '{hub_id}")
        assert f"is not in the local Hugging Face cache (no {first}) and HF_HUB_OFFLINE is set" in last
        assert not runs.exists()
        if first == "config.json":
            hf_cache(hub_id, "main", "config.json", "tokenizer_config.json", "model.safetensors")
    hf_cache(SD15_REPO, SD15_REVISION, "model_index.json")
    check_model_source(ModelSettings(model="gill"), None, SimpleNamespace(gill=GillSettings()))  # all there
    local = GillSettings(lm=str(tmp_path), vision="org/clip")  # a local folder is not the hub's
    with pytest.raises(Exception, match=r"--model gill \(--gill-vision\): 'org/clip'"):
        check_model_source(ModelSettings(model="gill"), None, SimpleNamespace(gill=local))


def test_gill_predict_generate_retrieve_offline_with_its_parts_uncached_is_one_line_naming_the_part(
        hf_cache, tmp_path, capsys, monkeypatch):
    """GILL's inference verbs check its hub parts up front, as `train` does: one line naming
    `--model gill (--gill-lm)` and the missing hub id, exit 2 (they failed inside the loading, or retried
    the hub); a caption or ranking from a trained adapter loads no SD, so only `generate` needs it."""
    from types import SimpleNamespace

    from nmm_core.diffusion import SD15_REPO
    from nmm_memes.gill.settings import CLIP_L14, OPT_6_7B, GillSettings, hub_parts

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    image = str(tmp_path / "meme.png")
    Image.new("RGB", (8, 8)).save(image)
    verbs = {"predict": [image], "generate": ["--out", str(tmp_path / "out.png"), "a cat"],
             "retrieve": ["a cat", image]}
    for verb, args in verbs.items():
        assert main([verb, "--model", "gill", *args]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"error: --model gill (--gill-lm): '{OPT_6_7B}' is not in the local Hugging Face "
                               "cache (no config.json) and HF_HUB_OFFLINE is set"), (verb, last)
    for hub_id in (OPT_6_7B, CLIP_L14):
        hf_cache(hub_id, "main", "config.json", "tokenizer_config.json", "model.safetensors")
    assert main(["generate", "--model", "gill", *verbs["generate"]]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"error: --model gill (--gill-sd): '{SD15_REPO}'")
    assert not (tmp_path / "out.png").exists()
    with_adapter = [flag for flag, *_ in hub_parts(SimpleNamespace(gill=GillSettings(), gill_sd=False))]
    assert with_adapter == ["--gill-lm", "--gill-vision"]
