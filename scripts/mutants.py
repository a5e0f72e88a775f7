#!/usr/bin/env python3
"""Mutation testing of the modules where a wrong answer would be silent, with one command:

    python3 scripts/mutants.py                 # every scope (about an hour and a half on 2 cores)
    python3 scripts/mutants.py region budget   # some scopes
    python3 scripts/mutants.py --table-only    # rewrite the table from the last results

It runs `cargo mutants` (`cargo install --locked cargo-mutants`, 27.x) on a clean copy of the
committed tree (a git worktree in `target/mutants/tree`, built in `target/mutants/target`, so the
checkout itself is never mutated), one scope after the other, each with the tests that exercise
it, and writes the caught / missed / timeout / unviable counts per module into the table of
`docs/testing.md` (between its `mutants` markers). Results stay in `target/mutants/<scope>/`.
"""

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "mutants"
TREE = WORK / "tree"
DOC = ROOT / "docs" / "testing.md"
BEGIN, END = "<!-- mutants:begin -->", "<!-- mutants:end -->"

# name -> (what, [files], [cargo mutants args], [cargo test target selection])
SCOPES = {
    "rle": (
        "COCO RLE encode/decode",
        ["omg-masks/src/rle.rs"],
        ["-p", "omg-masks"],
        [],
    ),
    "photo-frame": (
        "masks back in the photo; the padded-square transform (`SquareTransform` only)",
        ["omg-decoder/src/postprocess.rs", "omg-encoder/src/preprocess.rs"],
        ["--test-package", "omg-decoder,omg-encoder", "--re", "SquareTransform|postprocess"],
        [],
    ),
    "region": (
        "validation and the model frame",
        ["omg-llava/src/region.rs"],
        ["-p", "omg-llava"],
        ["--lib", "--test=integration"],
    ),
    "chat-template": (
        "the chat template and conversations",
        ["omg-llava/src/prompt.rs", "omg-llava/src/conversation.rs"],
        ["-p", "omg-llava"],
        ["--lib", "--test=integration"],
    ),
    "user-text": (
        "the user's text kept as text (special-token spans)",
        ["omg-llm/src/tokenizer/spans.rs"],
        ["-p", "omg-llm"],
        ["--lib", "--test=integration"],
    ),
    "sampling": (
        "sampling and stop handling",
        ["omg-llm/src/sampling.rs", "omg-llm/src/generation.rs"],
        ["-p", "omg-llm"],
        ["--lib", "--test=integration"],
    ),
    "batch": (
        "the batch manifest and runner",
        ["omg-cli/src/batch/manifest.rs", "omg-cli/src/batch/runner.rs"],
        ["-p", "omg-cli"],
        ["--test=batch", "--lib"],
    ),
    "server-options": (
        "the server's request options and bounds",
        ["omg-server/src/options.rs", "omg-server/src/bounds.rs"],
        ["-p", "omg-server"],
        [],
    ),
    "budget": (
        "the reduced-precision budget",
        ["omg-parity/src/precision.rs"],
        ["-p", "omg-parity"],
        ["--test=integration", "--lib"],
    ),
}


def sh(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def fresh_tree():
    """A worktree at the checkout's HEAD, clean."""
    head = subprocess.check_output(["git", "-C", ROOT, "rev-parse", "HEAD"], text=True).strip()
    if not (TREE / ".git").exists():
        WORK.mkdir(parents=True, exist_ok=True)
        sh(["git", "-C", ROOT, "worktree", "add", "--detach", "--force", TREE, head])
    sh(["git", "-C", TREE, "checkout", "--detach", "--force", head])
    sh(["git", "-C", TREE, "clean", "-fdq", "-e", "mutants.out*"])
    return head


def run_scope(name, timeout):
    _, files, args, test_args = SCOPES[name]
    out = WORK / name
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["cargo", "mutants", "--in-place", "--no-shuffle", "-o", out]
    if timeout is not None:
        cmd += ["--timeout", str(timeout)]
    for f in files:
        cmd += ["-f", f]
    cmd += args
    # test targets for both the build and the test phase of `cargo test`
    cmd += [f"--cargo-test-arg={a}" for a in test_args]
    env = dict(os.environ, CARGO_TARGET_DIR=str(WORK / "target"))
    # Start each scope from a fresh build of its crates: a test binary linked while the
    # previous scope's last mutant was in place can otherwise be taken as up to date.
    for package in sorted({f.split("/")[0] for f in files}):
        sh(["cargo", "clean", "-p", package], cwd=TREE, env=env)
    # exit status 2 means "some mutants were missed": the table says which
    result = subprocess.run(cmd, cwd=TREE, env=env)
    if result.returncode not in (0, 2, 3):
        sys.exit(f"cargo mutants failed on scope {name} (exit {result.returncode})")


def outcomes(name):
    path = WORK / name / "mutants.out" / "outcomes.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    rows = []
    for o in data["outcomes"]:
        scenario = o["scenario"]
        if not isinstance(scenario, dict) or "Mutant" not in scenario:
            continue
        m = scenario["Mutant"]
        rows.append((m["file"], o["summary"], m["name"]))
    return rows


def planned(name):
    """How many mutants each file of a scope has, from the scope's `mutants.json`."""
    path = WORK / name / "mutants.out" / "mutants.json"
    if not path.exists():
        return Counter()
    return Counter(m["file"] for m in json.loads(path.read_text()))


def table():
    lines = [
        "| scope | module | mutants tested | caught | missed | timeout | unviable | missed % of viable |",
        "|---|---|---|---|---|---|---|---|",
    ]
    missed_lines = []
    for name, (what, files, _, _) in SCOPES.items():
        rows = outcomes(name)
        if rows is None:
            lines.append(f"| {name}: {what} | {', '.join(f'`{f}`' for f in files)} | not run yet | | | | | |")
            continue
        plan = planned(name)
        for f in files:
            c = Counter(s for (file, s, _) in rows if file == f)
            total = sum(c.values())
            tested = f"{total}" if total >= plan[f] else f"{total} of {plan[f]} (unfinished)"
            viable = total - c["Unviable"]
            missed = c["MissedMutant"]
            share = f"{100 * missed / viable:.0f} %" if viable else "—"
            lines.append(
                f"| {name}: {what} | `{f}` | {tested} | {c['CaughtMutant']} | {missed} | {c['Timeout']} | {c['Unviable']} | {share} |"
            )
            missed_lines += [f"- `{d}`" for (file, s, d) in rows if file == f and s == "MissedMutant"]
    body = "\n".join(lines)
    if missed_lines:
        body += "\n\nMissed mutants (each is a test to write, or an equivalent mutant explained below):\n\n" + "\n".join(missed_lines)
    return body


def write_table():
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + table() + "\n" + text[end:])
    print(f"wrote the table into {DOC}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scopes", nargs="*", help=f"scopes to run (default all): {', '.join(SCOPES)}")
    ap.add_argument("--table-only", action="store_true", help="only rewrite the table")
    ap.add_argument(
        "--timeout",
        type=int,
        help="seconds per mutant's tests (default: cargo-mutants' own, 5x the unmutated run and at least 20 s;"
        " a mutant that loops, and may allocate without end, is stopped soon)",
    )
    a = ap.parse_args()
    unknown = [s for s in a.scopes if s not in SCOPES]
    if unknown:
        sys.exit(f"unknown scope(s) {unknown}; known: {', '.join(SCOPES)}")
    if not a.table_only:
        fresh_tree()
        for name in a.scopes or SCOPES:
            run_scope(name, a.timeout)
    write_table()


if __name__ == "__main__":
    main()
