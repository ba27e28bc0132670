"""Every command the README and docs/ show is tried against what it names: a `make` target and its variables
exist in the Makefile, a `re-pipeline` command and each of its options exist in the CLI, a script exists and
its `--help` lists each flag used, a variable set before a script is read by it. (CI itself runs the two first
commands, `make train` via the install and `make test`.) A link between the pages points at a file."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import typer

from re_pipeline.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
STARTS = ("make", "re-pipeline", "python", "bash", ".venv/bin/python")


def snippets(text: str) -> list[str]:
    """Inline code spans and the lines of fenced blocks, comments cut."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    rest = re.sub(r"```.*?```", "", text, flags=re.S)
    lines = [line.split(" # ")[0].strip() for block in blocks for line in block.splitlines()]
    return lines + re.findall(r"`([^`\n]+)`", rest)


def commands() -> list[tuple[str, str]]:
    """(page, command) for every snippet that runs something, after leading VAR=value settings."""
    found = []
    for page in PAGES:
        for snippet in snippets(page.read_text(encoding="utf-8")):
            for part in re.split(r" && |; ", snippet):
                words = part.split()
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words = words[1:]
                if words and words[0] in STARTS and not re.search(r"-m (venv|pip)\b|pip install", part):
                    found.append((page.name, part.strip()))
    return found


def flags(command: str) -> list[str]:
    """The options a command line uses (`--x`, `-x`, also inside optional [brackets]), without values."""
    return [w.split("=")[0] for w in re.findall(r"(?<![\w/.])(--?[a-zA-Z][\w-]*)", command)]


@cache
def make_text() -> str:
    return (ROOT / "Makefile").read_text(encoding="utf-8")


def check_make(command: str) -> None:
    words = command.split()
    targets = set(re.findall(r"^([\w-]+):", make_text(), re.M))
    if len(words) > 1 and not words[1].startswith("["):
        assert words[1] in targets or "=" in words[1], f"no make target {words[1]!r}"
    for var in re.findall(r"\b([A-Z_]+)=", command):
        assert f"$({var})" in make_text() or re.search(rf"^{var} \??=", make_text(), re.M), f"make reads no {var}"


def check_cli(command: str) -> None:
    words = command.replace("python -m re_pipeline", "re-pipeline").split()[1:]
    node = typer.main.get_command(app)
    while words and words[0] in getattr(node, "commands", {}):
        node = node.commands[words.pop(0)]
    known = {opt for param in node.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}
    for flag in flags(" ".join(words)):
        assert flag in known, f"{node.name}: no option {flag} (has {sorted(known)})"


@cache
def script_help(script: str) -> str:
    run = [sys.executable, str(ROOT / script), "--help"]
    top = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, timeout=120).stdout
    subs = re.findall(r"\{([\w,-]+)\}", top)
    more = [
        subprocess.run([*run[:2], sub, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120).stdout
        for group in subs
        for sub in group.split(",")
    ]
    return "\n".join([top, *more])


def check_script(command: str, full: str) -> None:
    words = command.split()
    script = next(w for w in words[1:] if w.endswith((".py", ".sh")))
    assert (ROOT / script).is_file(), f"no {script}"
    text = (ROOT / script).read_text(encoding="utf-8")
    for var in re.findall(r"\b([A-Z_]+)=", full.split(script)[0]):
        assert var in text, f"{script} reads no {var}"
    if script.endswith(".py"):
        for flag in flags(command.split(script, 1)[1]):
            assert flag in script_help(script), f"{script} --help lists no {flag}"


@pytest.mark.parametrize("page, command", commands(), ids=[f"{p}: {c[:60]}" for p, c in commands()])
def test_a_documented_command_names_what_exists(page, command):
    start = next(w for w in command.split() if not re.fullmatch(r"[A-Z_]+=\S*", w))
    if start == "make":
        check_make(command[command.index("make") :])
    elif command.startswith(("re-pipeline", "python -m re_pipeline")):
        check_cli(command)
    else:
        check_script(command[command.index(start) :], command)


def test_the_pages_document_the_main_commands():
    found = " ".join(c for _, c in commands())
    for needed in ("make train", "make test", "re-pipeline train", "re-pipeline predict", "re-pipeline ensemble"):
        assert needed in found


def test_a_checked_command_can_fail():
    with pytest.raises(AssertionError, match="no option --nope"):
        check_cli("re-pipeline train --nope")
    with pytest.raises(AssertionError, match="no make target"):
        check_make("make trian")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_link_between_the_pages_points_at_a_file(page):
    for target in re.findall(r"\]\(([^)#]+)\)", page.read_text(encoding="utf-8")):
        if not target.startswith("http"):
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_the_readme_fits_on_a_screen_or_two():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) < 120
