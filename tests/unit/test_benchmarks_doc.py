"""docs/benchmarks.md holds the current figure of each benchmark, one `###` section each, with a fixed set of fields.

Checked here: every section has its fields in order and one figure table; no figure stands outside a section;
every section's command names something that runs (a script in benchmarks/, a make target, a file of this
repository or the fleetwarden CLI), and every script in benchmarks/ it names exists; every benchmark script has a
section; no tracker number is cited.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "benchmarks.md"
FIELDS = ("Measures", "Command", "Machine", "Load", "Tree", "Goal")
OPTIONAL_FIELDS = ("Notes",)
TABLE_HEADER = "| figure | runs | median | max | goal | met |"
FIELD = re.compile(r"^\*\*([A-Z][A-Za-z ]*):\*\*")
SCRIPT = re.compile(r"^(?:\./)?(benchmarks/[\w.-]+\.py)$")
TRACKER_NUMBER = re.compile(r"\bissues? #?\d+|(?<![\w&])#\d+\b", re.IGNORECASE)
NOT_REPO_FILES = {".git", ".venv"}


def sections(text: str) -> list[tuple[str, list[str]]]:
    """(heading, body lines) of every `##` or `###` section, in order; the text before the first is heading ""."""
    found: list[tuple[str, list[str]]] = [("", [])]
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"#{2,3} ", line):
            found.append((line, []))
        else:
            found[-1][1].append(line)
    return found


def field_names(body: list[str]) -> list[str]:
    fenced = False
    names = []
    for line in body:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := FIELD.match(line)):
            names.append(match.group(1))
    return names


def command_lines(body: list[str]) -> list[str]:
    """The commands of the fenced block that follows **Command:**, continuation lines joined, comments dropped."""
    try:
        start = next(index for index, line in enumerate(body) if line.startswith("**Command:**"))
    except StopIteration:
        return []
    rest = body[start + 1:]
    opening = next((index for index, line in enumerate(rest) if line.strip()), None)
    if opening is None or not rest[opening].startswith("```"):
        return []
    block = []
    for line in rest[opening + 1:]:
        if line.startswith("```"):
            break
        block.append(line)
    joined = re.sub(r"\\\n\s*", " ", "\n".join(block))
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def make_targets(repo: Path) -> set[str]:
    makefile = repo / "Makefile"
    text = makefile.read_text() if makefile.is_file() else ""
    return {match.group(1) for match in re.finditer(r"^([A-Za-z0-9_][\w.-]*)\s*:(?!=)", text, re.MULTILINE)}


def console_scripts(repo: Path) -> set[str]:
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())
    return set(pyproject.get("project", {}).get("scripts", {}))


def command_problems(line: str, repo: Path) -> list[str]:
    """What is wrong with one command line: [] when it runs something of this repository that exists."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as error:
        return [f"`{line}` does not parse: {error}"]
    top_level = {path.name for path in repo.iterdir()} - NOT_REPO_FILES
    targets, scripts = make_targets(repo), console_scripts(repo)
    runs, wrong = [], []
    for index, word in enumerate(words):
        if match := SCRIPT.match(word):
            (runs if (repo / match.group(1)).is_file() else wrong).append(match.group(1))
        elif index and words[index - 1] == "make" and not word.startswith("-") and "=" not in word:
            if word in targets:
                runs.append(f"make {word}")
            else:
                wrong.append(f"make target {word}")
        elif Path(word).name in scripts and word in (Path(word).name, f".venv/bin/{Path(word).name}"):
            runs.append(word)
        elif "/" in word and "=" not in word and word.split("/")[0] in top_level:
            (runs if (repo / word).exists() else wrong).append(word)
    problems = [f"`{line}` names {name}, which does not exist" for name in wrong]
    if not runs and not wrong:
        problems.append(f"`{line}` names no benchmark script, make target, repository file or fleetwarden command")
    return problems


def problems(text: str, repo: Path = REPO) -> list[str]:
    """Every way `text` (a benchmarks.md) breaks the format; [] when it holds."""
    found = []
    for number in TRACKER_NUMBER.findall(text):
        found.append(f"cites a tracker number ({number}): describe what was measured instead")
    entries = 0
    for heading, body in sections(text):
        tables = [line for line in body if line.startswith("|")]
        if not heading.startswith("### "):
            if tables:
                found.append(f"{heading or 'the top'}: a figure table outside a benchmark's `###` section")
            continue
        entries += 1
        names = field_names(body)
        required = [name for name in names if name not in OPTIONAL_FIELDS]
        if tuple(required) != FIELDS or any(name not in FIELDS + OPTIONAL_FIELDS for name in names):
            found.append(f"{heading}: fields {names}, expected {list(FIELDS)} in this order (then optional Notes)")
        commands = command_lines(body)
        if not commands:
            found.append(f"{heading}: no command (a fenced block after **Command:**)")
        for line in commands:
            found.extend(f"{heading}: {problem}" for problem in command_problems(line, repo))
        if not tables or tables[0] != TABLE_HEADER:
            found.append(f"{heading}: no figure table starting `{TABLE_HEADER}`")
            continue
        if tables.count(TABLE_HEADER) > 1:
            found.append(f"{heading}: more than one figure table")
        rows = [row for row in tables[2:] if row != TABLE_HEADER]
        if not rows:
            found.append(f"{heading}: a figure table without figures")
        for row in rows:
            cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
            if len(cells) != 6 or not all(cells[:4]):
                found.append(f"{heading}: row {row!r} needs figure, runs, median and max (6 cells)")
    if not entries:
        found.append("no benchmark section (`###`)")
    return found


def test_benchmarks_md_keeps_its_format():
    assert problems(DOC.read_text()) == []


def test_every_benchmark_script_has_a_section_that_runs_it():
    named = {SCRIPT.match(word).group(1)
             for _, body in sections(DOC.read_text())
             for line in command_lines(body)
             for word in shlex.split(line, comments=True) if SCRIPT.match(word)}
    scripts = {f"benchmarks/{path.name}" for path in (REPO / "benchmarks").glob("*.py")
               if not path.name.startswith("_")}
    assert scripts - named == set(), "benchmark scripts without a section in docs/benchmarks.md"


# Built from parts, so that a search of the tree for cited tracker numbers does not find this sample.
CITATION = " ".join(("issue", "7"))
GOOD = """# Benchmarks

## Group

Text about the group.

### A benchmark

**Measures:** something.

**Command:**

```sh
# a comment line is not a command
.venv/bin/python benchmarks/lab.py --trials 5 \\
    --cold-trials 1
make lab
```

**Machine:** m.

**Load:** 1.

**Tree:** abc1234.

**Goal:** none.

| figure | runs | median | max | goal | met |
|---|---|---|---|---|---|
| lab up | 5 | 12.6 s | 18.9 s | - | - |

**Notes:**

- a note.
"""


def test_a_section_in_the_format_passes():
    assert problems(GOOD) == []


@pytest.mark.parametrize(("broken", "expected"), [
    (re.sub(r"\*\*Command:\*\*\n\n```sh\n.*?```\n\n", "", GOOD, flags=re.DOTALL), "no command"),
    (GOOD.replace("benchmarks/lab.py", "benchmarks/no_such_benchmark.py"),
     "names benchmarks/no_such_benchmark.py, which does not exist"),
    (GOOD.replace("make lab", "make no-such-target"), "names make target no-such-target, which does not exist"),
    (GOOD.replace(".venv/bin/python benchmarks/lab.py --trials 5", "time sleep 5"), "names no benchmark script"),
    (GOOD.replace("**Load:** 1.\n", ""), "expected ['Measures', 'Command', 'Machine', 'Load', 'Tree', 'Goal']"),
    (GOOD.replace("| figure | runs | median | max | goal | met |", "| what | n | median | max |"),
     "no figure table"),
    (GOOD.replace("| lab up | 5 |", "| lab up | |"), "needs figure, runs, median and max"),
    (GOOD.replace("Text about the group.", f"{TABLE_HEADER}\n|---|\n| x | 1 | 2 | 3 | - | - |"),
     "a figure table outside a benchmark's `###` section"),
    (GOOD.replace("something.", f"something ({CITATION})."), f"cites a tracker number ({CITATION})"),
])
def test_a_broken_section_is_named(broken, expected):
    found = problems(broken)
    assert any(expected in problem for problem in found), found
