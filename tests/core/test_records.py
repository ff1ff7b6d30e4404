"""Records: Example, lazy images and their conversion, validation that skips-and-counts or stops."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nmm_core.errors import ConfigError, DataError
from nmm_core.records import Example, Problem, ValidationReport, load_image, validate


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def good(rid: str, image=None) -> Example:
    return Example(id=rid, image=image, prompt="what is shown?", answers=("a bar chart",))


# --- Example -------------------------------------------------------------------------------


def test_example_normalises_answers_and_exposes_the_first_as_target():
    listed = Example(id="a", image=None, prompt="q", answers=["47", "47.0"])
    single = Example(id="b", image=None, prompt="q", answers="Texas")
    assert listed.answers == ("47", "47.0") and listed.answer == "47"
    assert single.answers == ("Texas",)  # not ("T", "e", "x", ...)
    assert single.meta == {}


def test_example_without_answers_has_no_target():
    unlabelled = Example(id="u1", image=None, prompt="q", answers=())
    with pytest.raises(DataError, match="record 'u1' field 'answers'"):
        _ = unlabelled.answer


def test_example_is_frozen():
    example = good("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.prompt = "changed"  # type: ignore[misc]


def test_importing_records_and_data_stays_light():
    code = (
        "import sys, nmm_core.records, nmm_core.data; "
        "heavy = ('PIL', 'datasets', 'pyarrow', 'numpy', 'torch'); "
        "heavy = [m for m in heavy if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- load_image ----------------------------------------------------------------------------


def test_rgba_becomes_rgb_with_transparency_over_white(tmp_path):
    rgba = Image.new("RGBA", (2, 1))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent, black underneath
    rgba.putpixel((1, 0), (200, 10, 10, 255))
    path = tmp_path / "chart.png"
    rgba.save(path)
    for source in (path, str(path), path.read_bytes(), rgba):
        image = load_image(good("c1", source))
        assert image.mode == "RGB"
        assert image.getpixel((0, 0)) == (255, 255, 255)
        assert image.getpixel((1, 0)) == (200, 10, 10)


def test_mode_none_keeps_the_file_mode(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGBA", (3, 3), (1, 2, 3, 4)).save(path)
    assert load_image(good("x", path), mode=None).mode == "RGBA"


def test_palette_and_grey_images_become_rgb():
    palette = Image.new("P", (1, 1), 0)
    palette.putpalette([10, 20, 30] * 256)
    grey = Image.new("L", (1, 1), 77)
    assert load_image(good("p", png_bytes(palette))).getpixel((0, 0)) == (10, 20, 30)
    assert load_image(good("l", png_bytes(grey))).getpixel((0, 0)) == (77, 77, 77)


def test_16_bit_grey_is_scaled_not_clipped():
    values = np.array([[65535, 32896, 0, 257]], dtype=np.uint16)
    data = png_bytes(Image.fromarray(values))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    image = load_image(good("scan", data))
    assert image.mode == "RGB"
    assert [image.getpixel((x, 0))[0] for x in range(4)] == [255, 128, 0, 1]


def test_corrupt_image_error_names_record_field_and_path(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(png_bytes(Image.new("RGB", (64, 64), "red"))[:60])  # truncated
    with pytest.raises(DataError) as info:
        load_image(good("abc", path))
    message = str(info.value)
    assert message.startswith(f"record 'abc' field 'image': cannot read {path} (")


def test_missing_image_file_error_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "y.png"
    with pytest.raises(DataError, match=r"record 'm1' field 'image': cannot read .*y\.png \("):
        load_image(good("m1", missing))


def test_text_only_record_has_no_image_to_load():
    with pytest.raises(DataError, match="no image"):
        load_image(good("t"))


# --- validate ------------------------------------------------------------------------------


@pytest.fixture
def mixed(tmp_path):
    """Four good records (one text-only) and five bad ones, one per kind of problem."""
    ok = png_bytes(Image.new("RGB", (4, 4), "blue"))
    return [
        good("g1", ok),
        good("g2", ok),
        good("g3"),
        Example(id="dup", image=None, prompt="q", answers=("1",)),
        Example(id="dup", image=None, prompt="q", answers=("2",)),
        Example(id="e1", image=None, prompt="   ", answers=("x",)),
        Example(id="e2", image=None, prompt="q", answers=("",)),
        Example(id="e3", image=tmp_path / "missing.png", prompt="q", answers=("x",)),
        Example(id="e4", image=b"not an image", prompt="q", answers=("x",)),
    ]


def test_validate_skip_keeps_good_records_and_reports_every_skipped_one(mixed):
    report = validate(mixed, policy="skip")
    assert [e.id for e in report.kept] == ["g1", "g2", "g3", "dup"]
    assert report.total == 9 and report.skipped == 5
    assert [(p.id, p.field) for p in report.problems] == [
        ("dup", "id"), ("e1", "prompt"), ("e2", "answers"), ("e3", "image"), ("e4", "image"),
    ]
    assert report.summary() == (
        "kept 4 of 9 records; skipped 5: 2 image unreadable, 1 id duplicate, "
        "1 prompt empty, 1 answer empty"
    )
    assert "missing.png" in str(report.problems[3])


def test_validate_stop_raises_naming_first_problems_and_the_count(mixed):
    with pytest.raises(DataError) as info:
        validate(mixed, policy="stop")
    message = str(info.value)
    assert message.startswith("5 of 9 records are invalid: record 'dup' field 'id': duplicate id")
    assert "record 'e4' field 'image'" in message and "more" not in message
    many = [Example(id=f"r{i}", image=None, prompt="", answers=("x",)) for i in range(8)]
    with pytest.raises(DataError, match=r"^8 of 8 records are invalid: .*r4.*; and 3 more$"):
        validate(many, policy="stop")


def test_validate_stop_returns_the_report_when_all_is_well(mixed):
    report = validate(mixed[:3], policy="stop")
    assert len(report.kept) == 3 and report.summary() == "kept 3 of 3 records"


def test_validate_options_relax_answers_and_images(tmp_path):
    unlabelled = Example(id="u", image=tmp_path / "missing.png", prompt="q", answers=())
    assert validate([unlabelled]).skipped == 1
    assert validate([unlabelled], require_answers=True, check_images=False).problems[0].field == (
        "answers"
    )
    report = validate([unlabelled], require_answers=False, check_images=False)
    assert report.kept == [unlabelled]


def test_validate_flags_non_text_and_empty_ids():
    records = [
        Example(id="", image=None, prompt="q", answers=("x",)),
        Example(id="n", image=None, prompt="q", answers=(47,)),  # type: ignore[arg-type]
        Example(id="p", image=None, prompt=None, answers=("x",)),  # type: ignore[arg-type]
    ]
    problems = validate(records).problems
    assert [(p.id, p.kind) for p in problems] == [
        ("#0", "id empty"), ("n", "answer not text"), ("p", "prompt not text"),
    ]


def test_validate_decodes_a_shared_image_once_per_path(tmp_path, monkeypatch):
    path = tmp_path / "shared.png"
    Image.new("RGB", (2, 2)).save(path)
    calls = []
    import nmm_core.records as records

    real = records.load_image
    monkeypatch.setattr(records, "load_image", lambda e, **kw: calls.append(e.id) or real(e, **kw))
    report = validate([good(f"q{i}", path) for i in range(5)])
    assert len(report.kept) == 5 and calls == ["q0"]


def test_unknown_policy_is_a_config_error():
    with pytest.raises(ConfigError, match="'lenient'"):
        validate([], policy="lenient")  # type: ignore[arg-type]


def test_write_problems_writes_jsonl_atomically(mixed, tmp_path):
    report = validate(mixed)
    target = tmp_path / "out" / "problems.jsonl"
    assert report.write_problems(target) == target
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["dup", "e1", "e2", "e3", "e4"]
    assert set(rows[0]) == {"id", "field", "why", "kind"}
    assert sorted(p.name for p in target.parent.iterdir()) == ["problems.jsonl"]


def test_problem_is_one_readable_line():
    why = "cannot read /x/y.png (No such file or directory)"
    assert str(Problem("abc", "image", why)) == f"record 'abc' field 'image': {why}"
    empty = ValidationReport(kept=[], problems=[], total=0)
    assert empty.summary() == "kept 0 of 0 records"


def test_image_size_reads_headers_of_paths_bytes_and_images(tmp_path):
    from nmm_core.records import image_size

    image = Image.new("RGB", (30, 20))
    path = tmp_path / "a.png"
    image.save(path)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    for source in (image, str(path), buffer.getvalue()):
        assert image_size(Example("r1", source, "q?", ("a",))) == (30, 20)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="record 'r2' field 'image'"):
        image_size(Example("r2", str(tmp_path / "bad.png"), "q?", ("a",)))


def test_png_bytes_keeps_every_pixel_and_the_mode():
    from nmm_core.records import png_bytes as encode

    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L")
    data = encode(image)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    back = Image.open(io.BytesIO(data))
    assert back.mode == "L" and np.array_equal(np.asarray(back), np.asarray(image))


def test_summary_line_counts_the_skipped_by_kind_in_the_unit_given(tmp_path):
    from nmm_core.records import Problem, summary_line, write_problems

    problems = [Problem("a", "image", "x", "unreadable"), Problem("b", "image", "y", "unreadable"),
                Problem("c", "prompt", "z")]
    assert summary_line(4, 7, problems, "subjects") == "kept 4 of 7 subjects; skipped 3: 2 unreadable, 1 prompt"
    assert summary_line(2, 2, []) == "kept 2 of 2 records"
    rows = write_problems(problems, tmp_path / "p" / "problems.jsonl").read_text().splitlines()
    assert [json.loads(r) for r in rows][2] == {"id": "c", "field": "prompt", "why": "z", "kind": ""}


def test_a_split_cut_from_a_shared_file_says_where_the_rest_went_and_problems_are_written_by_split(tmp_path):
    from nmm_core.records import Problem, listed_lines, summary_line, write_problems

    bad = [Problem("a", "image", "x", "image missing")]
    assert (summary_line(396, 441, bad, held_out={"validation": 44}) ==
            "kept 396 of 441 records (44 went to validation); skipped 1: 1 image missing")
    assert listed_lines(bad * 3, 2) == ["  skipped record 'a' field 'image': x"] * 2 + [
        "  ... and 1 more (--problems FILE lists all)"]
    assert listed_lines(bad, 0) == ["  ... and 1 more (--problems FILE lists all)"]
    rows = write_problems({"train": bad, "test": bad[:0]}, tmp_path / "p.jsonl").read_text().splitlines()
    assert [json.loads(r) for r in rows] == [
        {"split": "train", "id": "a", "field": "image", "why": "x", "kind": "image missing"}]


def test_a_file_that_is_no_image_is_named_without_python_internals(tmp_path):
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataError) as exc:
        load_image(Example("r7", str(bad), "q?", ("a",)))
    assert str(exc.value) == f"record 'r7' field 'image': cannot read {bad} (not an image format Pillow can read)"
