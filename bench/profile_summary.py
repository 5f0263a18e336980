"""Summarise py-spy ``--format raw`` (collapsed stacks) recorded by the benches.

``python bench/profile_summary.py PROFILE.txt [--top 25]`` prints, as shares of all
samples taken while a Python thread was running:

- by phase: the first parley frame under the thread's entry (where a request or a worker
  round spends its time);
- inclusive: every parley function (counted once per sample) with what it calls;
- by deepest parley frame: each sample charged to the innermost parley function on its
  stack, i.e. that function's own code plus the library code it called directly, which is
  where an optimisation in ``src/`` would have to act;
- leaf: the innermost frame of any code (SQLAlchemy, the sqlite3/psycopg driver, Jinja...).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def _name(frame: str) -> str:
    """``func (path.py:123)`` -> ``func (path.py)``."""
    return _LINE.sub(")", frame.strip())


def _is_parley(frame: str) -> bool:
    return "(parley/" in frame or "/src/parley/" in frame


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if frames and frames[0].startswith("thread ("):
            frames = frames[1:]
        stacks.append((frames, int(count)))
    return stacks


def summarise(path: Path, top: int) -> str:
    stacks = load(path)
    total = sum(n for _, n in stacks) or 1
    phase: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    deepest: Counter[str] = Counter()
    deepest_line: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for frames, n in stacks:
        parley = [f for f in frames if _is_parley(f)]
        phase[_name(parley[0]) if parley else "(outside parley: server, event loop, idle)"] += n
        for name in {_name(f) for f in parley}:
            inclusive[name] += n
        if parley:
            deepest[_name(parley[-1])] += n
            deepest_line[parley[-1].strip()] += n
        leaf[_name(frames[-1]) if frames else "?"] += n

    def table(title: str, counter: Counter[str]) -> list[str]:
        lines = [f"\n{title}"]
        for name, n in counter.most_common(top):
            lines.append(f"  {100 * n / total:5.1f}%  {name}")
        return lines

    out = [f"{path.name}: {total} samples"]
    out += table("by phase (first parley frame on the stack)", phase)
    out += table("inclusive (parley functions, with everything they call)", inclusive)
    out += table("by deepest parley frame (own code + direct library calls)", deepest)
    out += table("by deepest parley line", deepest_line)
    out += table("leaf frames (any code)", leaf)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="summarise py-spy raw profiles")
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.paths:
        print(summarise(path, args.top))
        print()


if __name__ == "__main__":
    main()
