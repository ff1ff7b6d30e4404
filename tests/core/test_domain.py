"""The domain kit: a declaration becomes a CLI with the standard verbs; data sources resolve themselves."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from PIL import Image

from nmm_core import ColumnSource, Domain, Example, SyntheticSet, domain_main, short_answer_task, write_jsonl_dataset
from nmm_core.domain import domain_parser, domain_verbs, standard_verbs, verb_config
from nmm_core.errors import ConfigError
from nmm_core.sources import check_source, is_synthetic
from nmm_core.workflows import DataSettings


@dataclass
class Dots:
    """A toy generated set: `train_size` / `test_size` black or white squares."""

    train_size: int = 3
    test_size: int = 2

    def sizes(self) -> dict[str, int]:
        return {"train": self.train_size, "test": self.test_size}


def write_dots(settings: Dots, folder: Path, *, progress: bool = True) -> Path:
    for split, n in settings.sizes().items():
        examples = [Example(f"{split}{i}", Image.new("RGB", (8, 8), "white" if i % 2 else "black"),
                            "What colour is it?", ("white" if i % 2 else "black",)) for i in range(n)]
        write_jsonl_dataset(examples, folder, split=split)
    (folder / "synthetic.json").write_text(json.dumps(settings.sizes()))
    return folder


def toy(**kw) -> Domain:
    return Domain(name="nmm-toy", description="toy", task=short_answer_task(),
                  data={"prompt_column": "prompt", "answers_column": "answers"},
                  synthetic=SyntheticSet(Dots, write=write_dots), **kw)


def test_standard_verbs_are_the_same_flags_for_every_domain():
    plain = Domain(name="nmm-plain", description="no generated set", task=short_answer_task())
    with_set = toy()
    assert set(standard_verbs(with_set)) == {"train", "eval", "compare", "compete", "predict", "data inspect",
                                             "data synthesize", "export", "runs"}
    assert "data synthesize" not in standard_verbs(plain)  # nothing to generate
    for verb in ("train", "eval", "compete", "predict"):
        flags = [{a.dest for a in domain_parser(d, domain_verbs(d))._subparsers._group_actions[0]
                  .choices[verb]._actions} - {"data.source", "synthetic"} for d in (plain, with_set)]
        synthetic = {f for f in flags[1] if f.startswith("synthetic.")}
        assert flags[0] == flags[1] - synthetic, verb
    # the default data differs only in naming the generated set
    train, *_ = standard_verbs(with_set)["train"]
    assert train().data.source == "synthetic" and train().data.prompt_column == "prompt"
    assert standard_verbs(plain)["train"][0]().data.source == ""


def test_a_group_mounts_the_standard_verbs_and_own_verbs_stay_top_level():
    called = []

    @dataclass
    class Detect:
        boxes: int = 1

    domain = toy(group="vqa", verbs={"detect train": (Detect, lambda cfg: called.append(cfg.boxes), "boxes")})
    parser = domain_parser(domain, domain_verbs(domain))
    assert parser.parse_args(["vqa", "train"]).nmm_verb == "vqa train"
    assert parser.parse_args(["vqa", "data", "inspect"]).nmm_verb == "vqa data inspect"
    with pytest.raises(SystemExit):
        parser.parse_args(["train"])
    assert domain_main(domain, ["detect", "train", "--boxes", "3"]) == 0 and called == [3]


def test_synthetic_is_spelt_one_way_and_empty_is_its_alias(tmp_path, capsys):
    assert is_synthetic("synthetic") and is_synthetic("") and not is_synthetic("./synthetic-charts")
    outputs = []
    for source in ("synthetic", ""):
        assert domain_main(toy(), ["data", "inspect", "--data-source", source,
                                   "--synthetic-train-size", "5"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert [line for line in outputs[0].splitlines() if line.startswith("[")] == ["[train] kept 5 of 5 records",
                                                                                  "[test] kept 2 of 2 records"]


def test_column_source_leaves_a_named_source_alone_and_builds_the_set_once(tmp_path):
    built = []

    def build() -> Path:
        built.append(1)
        return write_dots(Dots(), tmp_path)

    named = ColumnSource(DataSettings(source="some/hub-id"), build)
    assert named.resolve() is named and built == []
    resolved = ColumnSource(DataSettings(source="synthetic", prompt_column="prompt",
                                         answers_column="answers"), build).resolve()
    assert resolved.settings.source == str(tmp_path) and built == [1]
    assert [e.answers[0] for e in resolved.load("train").kept] == ["black", "white", "black"]


def test_the_preflight_lets_hub_ids_through_only_where_the_source_reads_them(tmp_path, monkeypatch):
    @dataclass(frozen=True)
    class LocalOnly:  # a domain's own source (as memes'): local files only
        settings: DataSettings

    (tmp_path / "here.jsonl").write_text("")
    check_source(ColumnSource(DataSettings(source=str(tmp_path / "here.jsonl"))))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # offline, the local datasets cache must hold it
        monkeypatch.delenv(var, raising=False)
    check_source(ColumnSource(DataSettings(source="owner/some-set")))  # a hub id, for loading to find
    with pytest.raises(ConfigError, match="^--data-source owner/some-set: no such file or folder$"):
        check_source(LocalOnly(DataSettings(source="owner/some-set")))
    for meant_as_a_path in ("./gone", str(tmp_path / "gone"), "gone.jsonl", "a/b/c"):
        with pytest.raises(ConfigError, match=f"^--data-source {meant_as_a_path}: no such file or folder$"):
            check_source(ColumnSource(DataSettings(source=meant_as_a_path)))
    with pytest.raises(ConfigError, match="give --data-source"):
        check_source(ColumnSource(DataSettings(source=" ")))


def test_synthesize_writes_the_set_and_a_domain_verb_replaces_a_standard_one(tmp_path, capsys):
    out = tmp_path / "set"
    assert domain_main(toy(), ["data", "synthesize", "--out", str(out), "--synthetic-test-size", "4"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"synthetic toy set: {out}", "  train: 3 questions",
                                                    "  test: 4 questions"]
    assert len((out / "test.jsonl").read_text().splitlines()) == 4

    @dataclass
    class Mine:
        note: str = "x"

    mine = toy(verbs={"data inspect": (Mine, lambda cfg: print(f"own inspect {cfg.note}"), "its own")})
    assert domain_main(mine, ["data", "inspect", "--note", "y"]) == 0
    assert capsys.readouterr().out == "own inspect y\n"


def test_bad_flag_values_end_in_one_line(capsys):
    assert domain_main(toy(), ["data", "inspect", "--data-source", "/no/such/folder"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "/no/such/folder" in err and "\n" not in err


def test_a_verb_without_a_class_keeps_the_standard_flags_and_positionals_keep_their_flags(capsys):
    seen = []
    domain = toy(verbs={"predict": (None, lambda cfg: seen.append((cfg.image, cfg.question, cfg.max_new_tokens)),
                                    "its own answer")})
    assert domain_main(domain, ["predict", "a.png", "--question", "is it?", "--generation-max-new-tokens", "3"]) == 0
    assert domain_main(domain, ["predict", "--image", "b.png", "--question", "why?"]) == 0
    assert seen == [("a.png", "is it?", 3), ("b.png", "why?", None)]
    assert domain_main(domain, ["predict", "--question", "is it?"]) == 2
    assert "missing IMAGE" in capsys.readouterr().err and len(seen) == 2


def test_a_domain_sets_its_training_defaults_under_the_flags():
    train, *_ = standard_verbs(toy(train={"epochs": 4.0}))["train"]
    assert train().train.epochs == 4.0 and train().train.lr == standard_verbs(toy())["train"][0]().train.lr
    domain = toy(train={"epochs": 4.0})
    parser = domain_parser(domain, domain_verbs(domain))
    assert verb_config(train, parser.parse_args(["train", "--train-epochs", "2"])).train.epochs == 2.0


def test_a_domain_without_a_task_gets_only_its_own_verbs_and_runs(capsys):
    @dataclass
    class Hello:
        """`hello`: greet someone."""

        name: str = "world"

    said: list[str] = []
    plain = Domain(name="nmm-plain", description="not a VLM domain",
                   verbs={"hello": (Hello, lambda cfg: said.append(cfg.name), "greet someone")})
    assert set(domain_verbs(plain)) == {"hello", "runs"}  # no train/eval/compare/predict/data/export
    assert domain_main(plain, ["hello", "--name", "you"]) == 0 and said == ["you"]
    with pytest.raises(SystemExit):
        domain_main(plain, ["train"])
    assert "invalid choice: 'train'" in capsys.readouterr().err


def test_inspect_names_the_first_skipped_records_and_writes_all_of_them(tmp_path, capsys):
    folder = write_dots(Dots(train_size=4), tmp_path / "set")
    rows = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    rows[1]["answers"], rows[3]["answers"] = [], []  # two bad records
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = tmp_path / "problems.jsonl"
    assert domain_main(toy(), ["data", "inspect", "--data-source", str(folder), "--listed", "1",
                               "--problems", str(problems)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[train] kept 2 of 4 records; skipped 2")
    assert out[1] == "  skipped record 'train1' field 'answers': no answers"
    assert out[2] == "  ... and 1 more (--problems FILE lists all)"
    assert "  references per record: 1: 2" in out and "  e.g. train0: 'What colour is it?' -> 'black'" in out
    written = [json.loads(line) for line in problems.read_text().splitlines()]
    assert [(r["split"], r["id"]) for r in written] == [("train", "train1"), ("train", "train3")]
    assert written[0] == {"split": "train", "id": "train1", "field": "answers", "why": "no answers",
                          "kind": "answer missing"}  # core's one writer: the kind too


def test_inspect_lists_the_bad_records_of_a_file_two_splits_share_once(tmp_path, capsys):
    from nmm_core.records import Problem, ValidationReport

    bad = [Problem("x", "image", "missing", "image missing")]
    ex = Example("k", None, "q?", ("a",))

    @dataclass(frozen=True)
    class Shared:
        """Two splits cut from one file (MemeCap's trainval): both carry the file's bad record."""

        settings: object
        synthetic: object = None

        def resolve(self):
            return self

        def load(self, split):
            held_out = {"validation": 1} if split == "train" else {"train": 3}
            return ValidationReport([ex] * (3 if split == "train" else 1), bad, 5, held_out=held_out)

    problems = tmp_path / "problems.jsonl"
    assert domain_main(toy(source=Shared), ["data", "inspect", "--splits", "train", "validation",
                                            "--problems", str(problems)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[train] kept 3 of 5 records (1 went to validation); skipped 1: 1 image missing"
    assert out[1] == "  skipped record 'x' field 'image': missing"
    at = out.index("[validation] kept 1 of 5 records (3 went to train); skipped 1: 1 image missing")
    assert out[at + 1] == "  skipped the same 1 as [train] (listed there)"
    assert [json.loads(line)["split"] for line in problems.read_text().splitlines()] == ["train"]


def test_a_domain_names_its_data_settings_generation_defaults_extra_groups_and_predict_inputs(capsys):
    @dataclass
    class MyData:
        source: str = ""
        shots: int = 1

    @dataclass
    class Extra:
        knob: int = 2

    seen = []
    domain = replace(toy(), data_settings=MyData, data={}, generation={"max_new_tokens": 7}, splits=("test",),
                     extra_settings={"train": {"extra": Extra}, "predict": {"extra": Extra}},
                     predict_inputs={"image": ("IMAGE", "the picture", None),
                                     "question": ("TITLE", "a title, quoted", "?")},
                     verbs={"predict": (None, seen.append, "own predict"), "train": (None, None, "own train help")})
    verbs = domain_verbs(domain)
    train, evaluate, inspect = verbs["train"][0](), verbs["eval"][0](), verbs["data inspect"][0]()
    assert (type(train.data), train.data.source, train.extra.knob) == (MyData, "synthetic", 2)
    assert evaluate.generation.max_new_tokens == 7 and not hasattr(evaluate, "extra")
    assert inspect.splits == ("test",)
    assert verbs["train"][2] == "own train help" and verbs["train"][1] is not None  # the kit's train, its help
    assert domain_main(domain, ["predict", "pic.png", "--extra-knob", "5"]) == 0
    [cfg] = seen
    assert (cfg.image, cfg.question, cfg.max_new_tokens, cfg.extra.knob) == ("pic.png", "", 7, 5)
    with pytest.raises(SystemExit):  # IMAGE is required by argparse (nargs None)
        domain_main(domain, ["predict"])
    assert "required: IMAGE" in capsys.readouterr().err


def test_compete_refuses_a_task_whose_primary_metric_has_no_per_example_score(tmp_path, capsys):
    from nmm_core.metric import Metric

    corpus_only = replace(short_answer_task(), metrics=(Metric("c", corpus=lambda p, r: 0.0),))
    domain = replace(toy(), task=corpus_only)
    assert domain_main(domain, ["compete", "--adapter", str(tmp_path), "--output-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "primary metric 'c' has no per-example score" in err and "\n" not in err
    assert not (tmp_path / "r").exists()  # refused before any run folder


def test_validation_answers_are_as_long_as_the_domain_s_eval_answers(tmp_path, generate_caps):
    """A domain's generation default (memes: 48) caps the validation metric's answers too, not the
    preset's 16: training checks the model as the domain's `eval` will score it."""
    domain = toy(generation={"max_new_tokens": 7}, model="tiny-qwen2-vl")
    assert domain_main(domain, ["train", "--synthetic-train-size", "8", "--lora-r", "4", "--train-batch-size", "4",
                                "--train-max-steps", "2", "--train-eval-steps", "2", "--train-eval-generate-limit",
                                "2", "--data-val-fraction", "0.25", "--output-dir", str(tmp_path / "runs")]) == 0
    assert generate_caps and set(generate_caps) == {7}, generate_caps
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "status.json").read_text())["summary"]["validation"]["max_new_tokens"] == 7


def test_a_domain_names_its_families_and_its_model_takes_their_presets_only(tmp_path, capsys, monkeypatch):
    from nmm_core import presets
    from nmm_core.domain_models import check_domain_model
    from nmm_core.presets import ModelPreset

    presets.all_presets()  # the installed ones loaded; the toy's own is registered into a copy, dropped after
    registry = presets._registry
    monkeypatch.setattr(presets, "_registry", replace(registry, presets=dict(registry.presets),
                                                      owners=dict(registry.owners)))
    own = ModelPreset("toy-qwen", "qwen2_vl", hub_id="org/toy-qwen", revision="a" * 40)
    domain = toy(families=("qwen2_vl",), presets=(own,))
    assert domain_main(domain, ["train", "--model", "tiny-llava-1.5", "--output-dir", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == ("error: --model tiny-llava-1.5 is a preset of nmm-pathology, not of "
                                               "nmm-toy (its presets: qwen2-vl-2b, tiny-qwen2-vl, toy-qwen)")
    with pytest.raises(SystemExit):
        domain_main(domain, ["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "a preset (qwen2-vl-2b, tiny-qwen2-vl, toy-qwen), or a model folder" in shown
    check_domain_model("nmm-toy", (), "tiny-gill", None)  # no families named: every preset, as `nmm` takes
    assert not (tmp_path / "r").exists()
