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

