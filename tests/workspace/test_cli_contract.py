"""Every program's command line, in-process: `info`, `--help`, `--version`, bad commands.

One contract for the four domain CLIs and the demo; each row names what is the program's own
(its dependency listed by `info`, what its help must show, how argparse rejects a stray word).
"""

from __future__ import annotations

import importlib

import pytest

# (program, package, the domain's own dependency that `info` lists with its installed version)
DOMAINS = (
    ("nmm-charts", "nmm_charts", "matplotlib"),
    ("nmm-connectome", "nmm_connectome", "nilearn"),
    ("nmm-memes", "nmm_memes", "diffusers"),
    ("nmm-pathology", "nmm_pathology", "ultralytics"),
)
# (program, package, words its --help must show, argparse's complaint about a stray word)
PROGRAMS = tuple((prog, pkg, (prog, "info"), "invalid choice") for prog, pkg, _ in DOMAINS) + (
    ("nmm-demo", "nmm_demo", ("nmm-demo", "--train-size"), "unrecognized arguments"),
)


def _main(package: str):
    return importlib.import_module(f"{package}.cli").main


def _version(package: str) -> str:
    return importlib.import_module(package).__version__


@pytest.mark.parametrize(("prog", "package", "dependency"), DOMAINS)
def test_info_prints_version_and_domain_dependency(capsys, prog, package, dependency):
    assert _main(package)(["info"]) == 0
    out = capsys.readouterr().out
    assert f"{prog} {_version(package)}" in out
    assert "nmm-core" in out
    # the domain's own dependency, listed with its installed version
    rows = [line.split() for line in out.splitlines()]
    [row] = [r for r in rows if r[:1] == [dependency]]
    assert row[1] != "MISSING", row


@pytest.mark.parametrize(("prog", "package", "shown", "complaint"), PROGRAMS)
def test_help_exits_zero(capsys, prog, package, shown, complaint):
    with pytest.raises(SystemExit) as exc:
        _main(package)(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in shown:
        assert word in out, word


@pytest.mark.parametrize(("prog", "package", "shown", "complaint"), PROGRAMS)
def test_unknown_command_fails(capsys, prog, package, shown, complaint):
    with pytest.raises(SystemExit) as exc:
        _main(package)(["no-such-command"])
    assert exc.value.code not in (0, None)
    assert complaint in capsys.readouterr().err


@pytest.mark.parametrize(("prog", "package", "dependency"), DOMAINS)
def test_version_flag(capsys, prog, package, dependency):
    with pytest.raises(SystemExit) as exc:
        _main(package)(["--version"])
    assert exc.value.code == 0
    assert f"{prog} {_version(package)}" in capsys.readouterr().out


@pytest.mark.parametrize(("prog", "package", "dependency"), DOMAINS)
def test_requires_a_command(capsys, prog, package, dependency):
    with pytest.raises(SystemExit) as exc:
        _main(package)([])
    assert exc.value.code not in (0, None)



# (package, a preset its --help names, one of another domain's it must not)
OWN_PRESETS = (("nmm_charts", "qwen2-vl-2b", "tiny-gill"), ("nmm_memes", "tiny-gill", "qwen2-vl-2b"),
               ("nmm_pathology", "llava-1.5-7b", "tiny-tinyllava"))


@pytest.mark.parametrize(("package", "own", "foreign"), OWN_PRESETS)
def test_help_names_the_domains_own_presets_only(capsys, package, own, foreign):
    with pytest.raises(SystemExit) as exc:
        _main(package)(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert exc.value.code == 0 and "--model takes a preset (" in out
    assert own in out and foreign not in out


def test_generic_nmm_still_takes_every_domains_preset(tmp_path, capsys):
    from nmm_core.cli import main

    for name in ("tiny-gill", "tiny-llava-1.5", "tiny-qwen2-vl"):  # memes', pathology's, charts'
        assert main(["train", "--model", name, "--data", str(tmp_path / "none.jsonl"),
                     "--output-dir", str(tmp_path / "runs")]) == 2
        err = capsys.readouterr().err
        assert "none.jsonl" in err and "--model" not in err and "preset" not in err, err


def _help(main, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("main", ["nmm_core", "nmm_memes"])
def test_convert_help_shows_its_positionals_not_their_flags_with_empty_defaults(capsys, main):
    out = _help(_main(main), ["convert", "--help"], capsys)
    assert "SRC OUT" in out and "--tokenizer" in out
    assert "--src" not in out and "--out" not in out and "(default: )" not in out


def test_predict_help_describes_an_optional_positionals_flag_as_its_alias(capsys):
    out = " ".join(_help(_main("nmm_charts"), ["predict", "--help"], capsys).split())
    assert "--image STR the same as IMAGE" in out and "--question STR the same as QUESTION" in out
    assert "(default: )" not in out


def test_connectome_info_takes_and_mentions_no_image(capsys):
    main = _main("nmm_connectome")
    assert "--image" not in _help(main, ["--help"], capsys) + _help(main, ["info", "--help"], capsys)
    with pytest.raises(SystemExit) as exc:
        main(["info", "--image", "64x64"])
    assert exc.value.code == 2 and "unrecognized arguments: --image" in capsys.readouterr().err
