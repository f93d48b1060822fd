"""fullmirror against bandersnatch on the same fake upstream, plus the limits both are held to.

Run from the repository root with the project's venv (the one fullmirror is installed in)::

    .venv/bin/python benchmarks/run.py --quick                 # smoke run, a few minutes
    .venv/bin/python benchmarks/run.py --corpus small-1k --runs 3
    .venv/bin/python benchmarks/run.py --corpus all --runs 3   # small-1k, small-10k, large
    .venv/bin/python benchmarks/run.py --corpus latency-1k --runs 3   # every answer 50 ms late
    .venv/bin/python benchmarks/run.py --corpus small-1k --profile   # py-spy of fullmirror

For every round and tool, a fresh fake upstream (``fullmirror fakepypi serve``, its own process,
same seed: the same corpus every time) serves four scenarios in order: ``initial`` (empty
directory), ``noop`` (nothing changed), ``incremental`` (after seeded random changes touching about
5 % of the projects, the same changes for every tool) and ``verify`` (``fullmirror verify --hash``,
``bandersnatch verify``). Tools take turns in a rotating order, round after round. Each child is
measured with ``os.wait4``: wall time, user+system CPU, peak RSS; the upstream's CPU comes from
``/proc/<pid>/stat`` and its requests by kind from its stats endpoint. The baselines run in the
same rotation: a raw parallel fetch of the same files (httpx threads, and ``curl --parallel``)
and sha256 of the mirrored bytes from disk.

Results (every run, and medians) land in ``benchmarks/results/<corpus>.json`` and ``.md``; logs
and mirrors in ``benchmarks/.work/`` (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    RESULTS,
    WORK,
    Measure,
    Upstream,
    bench_venv,
    empty_bin,
    fullmirror_conf,
    loadavg,
    log,
    median,
    page_cache,
    precompile,
    remove_tree,
    run_measured,
    set_aside,
    tool_version,
    tree_bytes,
)

WORKERS = 10  # bandersnatch's maximum; fullmirror gets the same
VERIFIERS = 3  # both tools' default
CHANGE_SHARE = 0.05
SCENARIOS = ("initial", "noop", "incremental", "verify")
#: ``-1p``: the same as fullmirror-xmlrpc but kept to one process (``processes = 1``), to show
#: what the child processes of a large run add and what one process does alone.
TOOLS = ("bandersnatch", "fullmirror-xmlrpc", "fullmirror-simple", "fullmirror-xmlrpc-1p")
BASELINE = "baseline"


#: A network with latency, as the fake upstream's stall switch plays it: every request waits
#: 50 ms for its answer, and a release file's body pauses another 50 ms halfway.
LATENCY = ("stall_rate=1", "stall_seconds=0.05", "scope=" + ",".join(
    ("xmlrpc", "root", "project", "json-api", "file", "metadata")
))  # fmt: skip


@dataclass(frozen=True)
class Corpus:
    name: str
    projects: int
    seed: int = 1
    file_size: int = 0
    file_size_max: int = 0
    byte_cache_mib: int | None = None
    #: ``fakepypi serve --fault`` switches, e.g. a delay before every answer.
    faults: tuple[str, ...] = ()
    note: str = ""


CORPORA = {
    "small-1k": Corpus("small-1k", 1_000, note="~3.5 small files (1-3 KB) per project"),
    "small-10k": Corpus("small-10k", 10_000, note="~3.5 small files (1-3 KB) per project"),
    "large": Corpus(
        "large",
        95,
        file_size=5_000_000,
        file_size_max=20_000_000,
        byte_cache_mib=4096,
        note="~200 wheels of 5-20 MB (plus small sdists and .metadata)",
    ),
    "latency-1k": Corpus(
        "latency-1k",
        1_000,
        faults=LATENCY,
        note="small-1k's corpus, every answer 50 ms late (a file's body also pauses halfway)",
    ),
    "quick-small": Corpus("quick-small", 300, note="smoke run"),
    "quick-large": Corpus(
        "quick-large",
        12,
        file_size=2_000_000,
        file_size_max=8_000_000,
        byte_cache_mib=1024,
        note="smoke run, ~25 wheels of 2-8 MB",
    ),
}
GROUPS = {"all": ["small-1k", "small-10k", "large"], "quick": ["quick-small", "quick-large"]}


@dataclass
class Row:
    corpus: str
    round: int
    tool: str
    scenario: str
    wall: float
    cpu: float
    user: float
    sys: float
    maxrss_mb: float
    rc: int
    upstream_cpu: float
    requests: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)


# -- configurations ----------------------------------------------------------------------------


def _bandersnatch_conf(directory: Path, master: str) -> str:
    return f"""[mirror]
directory = {directory}
master = {master}
allow-non-https = true
json = true
release-files = true
workers = {WORKERS}
verifiers = {VERIFIERS}
timeout = 10
global-timeout = 1800
stop-on-error = false
hash-index = false
"""


def _fullmirror_conf(directory: Path, master: str, api_method: str, processes: str) -> str:
    settings: dict[str, object] = {"json": "true", "release-files": "true", "workers": WORKERS}
    settings.update({"verifiers": VERIFIERS, "processes": processes})
    return fullmirror_conf(directory, master, api_method, settings)


@dataclass
class Tool:
    name: str
    conf: Path
    commands: dict[str, list[str]]


def make_tool(name: str, directory: Path, master: str, bindir: Path) -> Tool:
    conf = directory.parent / f"{directory.name}.conf"
    if name == "bandersnatch":
        conf.write_text(_bandersnatch_conf(directory, master))
        # `bandersnatch verify` refuses an http:// master whatever allow-non-https says; it only
        # contacts the master to re-download missing or corrupt files (none here), so its config
        # names an https URL on a closed loopback port.
        verify_conf = directory.parent / f"{directory.name}-verify.conf"
        verify_conf.write_text(_bandersnatch_conf(directory, "https://127.0.0.1:9"))
        program = str(bindir / "bandersnatch")
        mirror = [program, "-c", str(conf), "mirror"]
        verify = [program, "-c", str(verify_conf), "verify", "--workers", str(VERIFIERS)]
    else:
        api_method = name.split("-")[1]
        processes = "1" if name.endswith("-1p") else "auto"
        conf.write_text(_fullmirror_conf(directory, master, api_method, processes))
        exe = [sys.executable, "-m", "fullmirror"]
        mirror = [*exe, "-c", str(conf), "mirror"]
        verify = [*exe, "-c", str(conf), "verify", "--hash"]
    commands = {"initial": mirror, "noop": mirror, "incremental": mirror, "verify": verify}
    return Tool(name, conf, commands)


# -- one round of one tool -------------------------------------------------------------------


def _upstream(corpus: Corpus, logs: Path) -> Upstream:
    return Upstream(
        projects=corpus.projects,
        seed=corpus.seed,
        file_size=corpus.file_size,
        file_size_max=corpus.file_size_max,
        byte_cache_mib=corpus.byte_cache_mib,
        log_path=logs / "upstream.log",
        faults=corpus.faults,
    )


def _measure(
    up: Upstream, argv: list[str], log_path: Path
) -> tuple[Measure, float, dict[str, int]]:
    """Run one measured child; also the upstream's CPU and requests while it ran."""
    up.take_stats()
    before = up.cpu()
    measure = run_measured(argv, log_path)
    spent = up.cpu() - before
    return measure, spent, up.take_stats()


def tool_round(corpus: Corpus, tool_name: str, rnd: int, bindir: Path, profile: bool) -> list[Row]:
    base = WORK / corpus.name
    logs = base / "logs"
    directory = base / f"{tool_name}-r{rnd}"
    _discard(corpus, directory)  # left by an interrupted run
    rows: list[Row] = []
    with _upstream(corpus, logs) as up:
        tool = make_tool(tool_name, directory, up.url, bindir)
        log(f"{corpus.name} round {rnd}: {tool_name} (upstream up in {up.startup_seconds:.1f} s)")
        for scenario in SCENARIOS:
            extra: dict[str, Any] = {}
            if scenario == "incremental":
                n = max(1, round(CHANGE_SHARE * corpus.projects))
                extra["events"] = n
                extra["projects_touched"] = up.random_changes(n, seed=7919 + rnd)
            argv = tool.commands[scenario]
            log_path = logs / f"{tool_name}-r{rnd}-{scenario}.log"
            if scenario == "verify":
                # Every tool's verify (and the sha256 baseline) starts with the mirror cached.
                page_cache(directory, warm=True)
            if profile and scenario in ("initial", "verify") and tool_name != "bandersnatch":
                argv = _profiled(argv, base / f"profile-{tool_name}-{scenario}.txt", bindir)
            m, up_cpu, requests = _measure(up, argv, log_path)
            if scenario == "initial":
                files, size = tree_bytes(directory / "web" / "packages")
                extra.update(files=files, bytes=size)
            rows.append(_row(corpus, rnd, tool_name, scenario, m, up_cpu, requests, extra))
            log(
                f"  {scenario:11} {m.wall:7.2f} s wall {m.cpu:7.2f} s cpu "
                f"{m.maxrss_mb:6.0f} MB rc {m.rc}  upstream {up_cpu:.2f} s cpu  {requests}"
            )
        if tool_name == "fullmirror-xmlrpc":
            packages = directory / "web" / "packages"
            page_cache(packages, warm=True)
            rows.append(_sha256_baseline(corpus, rnd, directory, logs, "sha256-disk"))
            # The same pair from the disk: the mirror's pages evicted before each.
            page_cache(directory, warm=False)
            m, up_cpu, requests = _measure(
                up, tool.commands["verify"], logs / f"{tool_name}-r{rnd}-verify-cold.log"
            )
            rows.append(_row(corpus, rnd, tool_name, "verify-cold", m, up_cpu, requests, {}))
            log(f"  verify-cold {m.wall:7.2f} s wall {m.cpu:7.2f} s cpu rc {m.rc}")
            page_cache(directory, warm=False)
            rows.append(_sha256_baseline(corpus, rnd, directory, logs, "sha256-disk-cold"))
        extra = {"upstream_rss_mb": up.rss_mb(), "upstream_startup_s": up.startup_seconds}
        rows[0].extra.update(extra)
    _discard(corpus, directory)
    return rows


def _discard(corpus: Corpus, directory: Path) -> None:
    """A mirror no longer needed: of small files, set aside until the corpus is done (removing
    20,000 files taxes the next tool's first sync, see ``set_aside``); of large files (a few
    hundred of them, gigabytes), removed now."""
    if corpus.file_size:
        remove_tree(directory)
    else:
        set_aside(directory, WORK / corpus.name / "set-aside")


def _profiled(argv: list[str], out: Path, bindir: Path) -> list[str]:
    # --gil: only the thread holding the GIL is sampled, i.e. where Python spends CPU.
    spy = [str(bindir / "py-spy"), "record", "--format", "raw", "--gil", "-r", "250"]
    return [*spy, "-o", str(out), "--", *argv]


def _row(
    corpus: Corpus,
    rnd: int,
    tool: str,
    scenario: str,
    m: Measure,
    up_cpu: float,
    requests: dict[str, int],
    extra: dict[str, Any],
) -> Row:
    return Row(
        corpus.name, rnd, tool, scenario, round(m.wall, 4), round(m.cpu, 4), round(m.user, 4),
        round(m.sys, 4), round(m.maxrss_mb, 1), m.rc, round(up_cpu, 4), requests, extra,
    )  # fmt: skip


def _baseline_json(log_path: Path) -> dict[str, Any]:
    lines = [x for x in log_path.read_text().splitlines() if x.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _sha256_baseline(corpus: Corpus, rnd: int, directory: Path, logs: Path, name: str) -> Row:
    log_path = logs / f"{name}-r{rnd}.log"
    script = str(Path(__file__).with_name("baselines.py"))
    packages = str(directory / "web" / "packages")
    m = run_measured([sys.executable, script, "sha256", packages, str(VERIFIERS)], log_path)
    extra = _baseline_json(log_path)
    log(f"  {name} {m.wall:7.2f} s wall {m.cpu:7.2f} s cpu ({extra})")
    return _row(corpus, rnd, BASELINE, name, m, 0.0, {}, extra)


def baseline_round(corpus: Corpus, rnd: int) -> list[Row]:
    """Raw parallel fetches of every file the upstream links, on a fresh upstream."""
    base = WORK / corpus.name
    logs = base / "logs"
    script = str(Path(__file__).with_name("baselines.py"))
    listing = base / "files.txt"
    rows: list[Row] = []
    with _upstream(corpus, logs) as up:
        log(f"{corpus.name} round {rnd}: raw fetch baselines")
        listed = run_measured(
            [sys.executable, script, "list", up.url, str(listing)], logs / "list.log"
        )
        if listed.rc != 0:
            raise RuntimeError(f"listing the upstream's files failed; see {logs / 'list.log'}")
        for kind in ("fetch", "curl"):
            target = base / f"raw-{kind}-r{rnd}"
            _discard(corpus, target)  # left by an interrupted run
            log_path = logs / f"raw-{kind}-r{rnd}.log"
            argv = [sys.executable, script, kind, str(listing), str(target), str(WORKERS)]
            m, up_cpu, requests = _measure(up, argv, log_path)
            extra = _baseline_json(log_path)
            name = "raw-httpx" if kind == "fetch" else "raw-curl"
            rows.append(_row(corpus, rnd, BASELINE, name, m, up_cpu, requests, extra))
            log(
                f"  {name:11} {m.wall:7.2f} s wall {m.cpu:7.2f} s cpu  upstream {up_cpu:.2f} s"
                f" cpu ({extra})"
            )
            _discard(corpus, target)
    return rows


# -- reporting ---------------------------------------------------------------------------------


def _median_row(rows: list[Row]) -> Row:
    ordered = sorted(rows, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


def _requests_text(requests: dict[str, int]) -> str:
    short = {
        "xmlrpc:changelog_last_serial": "rpc-last",
        "xmlrpc:list_packages_with_serial": "rpc-list",
        "xmlrpc:changelog_since_serial": "rpc-since",
        "simple-root": "root",
        "simple-project": "simple",
        "json-api": "json",
        "file": "file",
        "metadata": "meta",
    }
    parts = [f"{short.get(k, k)} {v}" for k, v in sorted(requests.items())]
    return ", ".join(parts) + f" (= {sum(requests.values())})" if parts else "0"


def summarise(corpus: Corpus, rows: list[Row], meta: dict[str, Any]) -> str:
    runs = len({r.round for r in rows})
    lines = [
        f"### {corpus.name}: {corpus.projects} projects ({corpus.note})",
        "",
        f"Medians of {runs} run(s); {meta['when']}, {meta['cpus']} CPUs, load average before "
        f"{meta['load_before']}, after {meta['load_after']}. Command: `{meta['command']}`",
        "",
        "| scenario | tool | wall s | CPU s | peak RSS MB | upstream CPU s "
        "| requests (of the median run) | vs bandersnatch (wall) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    by: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        by.setdefault((row.scenario, row.tool), []).append(row)
    for scenario in (*SCENARIOS, "verify-cold", "raw-httpx", "raw-curl", "sha256-disk",
                     "sha256-disk-cold"):  # fmt: skip
        reference = by.get((scenario, "bandersnatch"))
        for tool in (*TOOLS, BASELINE):
            group = by.get((scenario, tool))
            if not group:
                continue
            wall = median([r.wall for r in group])
            ratio = ""
            if reference and tool != "bandersnatch" and tool != BASELINE:
                ratio = f"{wall / median([r.wall for r in reference]):.2f}"
            failed = sum(1 for r in group if r.rc != 0)
            label = tool + (f" ({failed} failed)" if failed else "")
            lines.append(
                f"| {scenario} | {label} | {wall:.2f} | {median([r.cpu for r in group]):.2f} | "
                f"{median([r.maxrss_mb for r in group]):.0f} | "
                f"{median([r.upstream_cpu for r in group]):.2f} | "
                f"{_requests_text(_median_row(group).requests)} | {ratio} |"
            )
    lines += ["", *_derived(by)]
    return "\n".join(lines) + "\n"


def _derived(by: dict[tuple[str, str], list[Row]]) -> list[str]:
    """Throughput against the raw fetch, verify against sha256."""
    out: list[str] = []

    def rate(rows: list[Row]) -> float:
        return median([r.extra.get("bytes", 0) / r.wall for r in rows if r.wall > 0])

    raw = by.get(("raw-httpx", BASELINE))
    curl = by.get(("raw-curl", BASELINE))
    if raw and rate(raw) > 0:
        raw_rate = rate(raw)
        text = f"raw httpx fetch {raw_rate / 1e6:.1f} MB/s"
        if curl:
            text += f", curl --parallel {rate(curl) / 1e6:.1f} MB/s"
        out.append(f"- Download throughput (bytes under web/packages / wall of `initial`); {text}:")
        for tool in TOOLS:
            rows = by.get(("initial", tool))
            if rows:
                tool_rate = rate(rows)
                out.append(
                    f"  - {tool}: {tool_rate / 1e6:.1f} MB/s = {100 * tool_rate / raw_rate:.0f} % "
                    "of the raw httpx fetch"
                )
    for suffix, state in (("", "the mirror cached"), ("-cold", "the mirror evicted first")):
        sha = by.get(("sha256-disk" + suffix, BASELINE))
        if not sha or rate(sha) <= 0:
            continue
        out.append(
            f"- sha256 of web/packages ({VERIFIERS} threads), {state}: {rate(sha) / 1e6:.1f} MB/s"
        )
        verify = by.get(("verify" + suffix, "fullmirror-xmlrpc"))
        if verify:
            wall = median([r.wall for r in verify])
            sha_wall = median([r.wall for r in sha])
            out.append(
                f"  - `fullmirror verify --hash`: {wall:.2f} s vs {sha_wall:.2f} s, i.e. "
                f"{100 * sha_wall / wall:.0f} % of the sha256 baseline's speed"
            )
    return out


# -- main --------------------------------------------------------------------------------------


def run_corpus(corpus: Corpus, runs: int, tools: list[str], bindir: Path, profile: bool) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "bandersnatch": tool_version([str(bindir / "bandersnatch"), "--version"]),
        "load_before": loadavg(),
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
        "workers": WORKERS,
        "verifiers": VERIFIERS,
    }
    rows: list[Row] = []
    slots = [*tools, BASELINE]
    set_aside_dir = WORK / corpus.name / "set-aside"
    if set_aside_dir.exists():
        log(f"removing {set_aside_dir} left by an interrupted run; waiting 6 minutes after it")
        empty_bin(set_aside_dir)
        time.sleep(360)
    for rnd in range(runs):
        order = slots[rnd % len(slots) :] + slots[: rnd % len(slots)]
        for slot in order:
            if slot == BASELINE:
                rows += baseline_round(corpus, rnd)
            else:
                rows += tool_round(corpus, slot, rnd, bindir, profile and rnd == 0)
    meta["load_after"] = loadavg()
    empty_bin(set_aside_dir)
    data = {"corpus": corpus.__dict__, "meta": meta, "rows": [r.__dict__ for r in rows]}
    (RESULTS / f"{corpus.name}.json").write_text(json.dumps(data, indent=1) + "\n")
    table = summarise(corpus, rows, meta)
    (RESULTS / f"{corpus.name}.md").write_text(table)
    print(table, flush=True)
    if profile:
        from profile_summary import summarise as profile_table

        for path in sorted((WORK / corpus.name).glob("profile-*.txt")):
            text = f"py-spy --gil, {path.stem}, {corpus.name}\n\n" + profile_table(path, 20)
            (RESULTS / f"{corpus.name}-{path.stem}.md").write_text(text)
            print(text, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="small-1k",
                        help=f"{', '.join(CORPORA)}, all or quick (default small-1k)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, help="rounds per tool (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: --corpus quick --runs 1")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy fullmirror's initial and verify (round 0)")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.corpus, args.runs = "quick", 1
    names = GROUPS.get(args.corpus, [args.corpus])
    unknown = [n for n in names if n not in CORPORA]
    tools = [t for t in args.tools.split(",") if t]
    if unknown or args.runs < 1 or any(t not in TOOLS for t in tools):
        parser.error(f"unknown corpus or tool, or --runs < 1 (corpora: {', '.join(CORPORA)})")
    try:
        import fullmirror  # noqa: F401 - the project must be installed in this interpreter
    except ImportError:
        parser.error("run this with the project's venv: .venv/bin/python benchmarks/run.py")
    bindir = bench_venv()
    precompile()
    for name in names:
        run_corpus(CORPORA[name], args.runs, tools, bindir, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
