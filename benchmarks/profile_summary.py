"""Summarise a ``py-spy record --format raw`` file: the functions with the most samples.

``python benchmarks/profile_summary.py PROFILE.txt [TOP]`` prints two tables: *self* (the sample
ends in that function) and *inclusive* (the function is anywhere on the sampled stack), each as a
share of all samples. py-spy samples only threads that are running (not idle), so shares are of
busy time across all threads.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def _function(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    name, where = match.groups()
    where = where.split("site-packages/")[-1].split("lib/python3")[-1]
    return f"{name} ({where})"


def summarise(path: Path, top: int = 15) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_function(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return "no samples\n"
    lines = [f"{total} samples (busy threads)", "", "| self % | function |", "| ---: | --- |"]
    lines += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in own.most_common(top)]
    lines += ["", "| inclusive % | function |", "| ---: | --- |"]
    skip = ("Thread._bootstrap", "Thread.run", "_worker (", "_WorkItem.run", "<module>", "runpy")
    shown = [(n, c) for n, c in inclusive.most_common() if not any(s in n for s in skip)][:top]
    lines += [f"| {100 * c / total:.1f} | `{n}` |" for n, c in shown]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 15), end="")
