#!/usr/bin/env python3
"""The README and the pages of docs/, followed literally.

Every fenced shell block of every page (README.md, then the pages of docs/ in the order of PAGES) carries a
mark after its language:

- ``sh walkthrough``: run by this script, in that order, in one ``bash -euo pipefail`` session in the
  repository's folder, against the server that ``cargo run --release`` starts (on 127.0.0.1:0; the blocks
  read the address from ``$B``, which they default to ``http://localhost:8000`` for a person), so a page's
  block may use what the README's walk-through left (its ``bundle.json``, the installed binary);
- ``sh tested-by=PATH-OR-TEST``: run by another test, named by a file of the repository or a test function.

A shell block without a mark, or naming a test that does not exist, fails. The script prints what each block
printed, checks what the walk-through promises (a Part 10 file, the 403s), and ends with ``N passed, N
failed``; it exits 1 when anything failed. Nothing leaves 127.0.0.1.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The pages, in the order their walk-through blocks run: the README first, then the reference.
PAGES = ["README.md", "docs/api.md", "docs/operations.md", "docs/ehr.md", "docs/index.md",
         "docs/performance.md", "docs/viewer.md", "docs/teach.md", "docs/probe.md", "docs/ARCHITECTURE.md"]
SHELLS = {"sh", "bash", "shell", "console"}
# What the walk-through writes in the repository's folder; removed afterwards, and refused if already there
# (a person's own key is never touched).
OUTPUTS = ["bundle.json", "study.multipart", "one.dcm", "refused.json",
           "smart.json", "token.json", "smart-bundle.json", "smart-study.multipart",
           "system-token.json", "system-bundle.json",
           "keys/imaging-server.private.jwk.json", "keys/imaging-server.public.jwk.json"]

passed = 0
failed = 0


def check(ok, what):
    global passed, failed
    print(("PASS  " if ok else "FAIL  ") + what, flush=True)
    if ok:
        passed += 1
    else:
        failed += 1
    return ok


def fenced_blocks(text):
    """(info words, body, line number) of each fenced block, indented ones (in list items) included."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(.*)$", lines[i])
        if not m:
            i += 1
            continue
        indent, info, start = len(m.group(1)), m.group(2).split(), i + 1
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        yield info, "\n".join(body) + "\n", start


def exists(target):
    if "/" in target or target.endswith((".py", ".sh", ".rs")):
        return (ROOT / target).exists()
    for folder in ("tests", "src"):
        for path in (ROOT / folder).rglob("*.rs"):
            if re.search(r"\bfn " + re.escape(target) + r"\b", path.read_text(errors="replace")):
                return True
    return False


def main():
    unlisted = sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in PAGES)
    check(not unlisted, f"every page of docs/ is in PAGES ({', '.join(unlisted) or 'none missing'})")
    walkthrough = []
    for page in PAGES:
        for info, body, line in fenced_blocks((ROOT / page).read_text()):
            if not info or info[0] not in SHELLS:
                continue
            marks = info[1:]
            tested_by = [m.split("=", 1)[1] for m in marks if m.startswith("tested-by=")]
            if "walkthrough" in marks:
                walkthrough.append((f"{page} line {line}", body))
            elif tested_by:
                check(all(exists(t) for t in tested_by), f"{page} line {line}: run by {', '.join(tested_by)}")
            else:
                check(False, f"{page} line {line}: a shell block with no mark (walkthrough or tested-by=…)")
    in_readme = sum(1 for where, _ in walkthrough if where.startswith("README.md "))
    check(in_readme >= 2, f"the README has walk-through blocks ({in_readme}; {len(walkthrough)} in all)")

    there = [o for o in OUTPUTS if (ROOT / o).exists()]
    if not check(not there, "no file the walk-through writes is in the way"):
        print(f"      move these away first: {', '.join(there)}")
        return finish()

    # The README's main command, on free ports instead of 8000 and the sandbox's 8001 (tests never take a
    # fixed port); the walk-through finds the sandbox through the smart tenant's smart-configuration.
    server = subprocess.Popen(
        ["cargo", "run", "--release", "--locked", "--", "--listen", "127.0.0.1:0", "--sandbox-listen", "127.0.0.1:0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        base = None
        deadline = time.time() + 900
        while time.time() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            m = re.match(r"^listening on (http://\S+)", line)
            if m:
                base = m.group(1)
                break
        if not check(base is not None, "cargo run --release serves"):
            print(server.stderr.read()[-4000:] if server.poll() is not None else "(no listening line)")
            return finish()
        env = dict(os.environ, B=base)
        cargo_bin = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "bin"
        if str(cargo_bin) not in env.get("PATH", "").split(":"):
            env["PATH"] = f"{cargo_bin}:{env.get('PATH', '')}"
        script = "".join(f"# {where}\n{body}" for where, body in walkthrough)
        print(f"==> running {len(walkthrough)} walk-through blocks against {base}", flush=True)
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=900)
        print(run.stdout[-6000:])
        if run.returncode != 0:
            print(run.stderr[-6000:])
        check(run.returncode == 0, f"the walk-through runs as written (exit status {run.returncode})")
        out = run.stdout
        check("DICM" in out, "step 3 fetched a DICOM Part 10 file")
        check(out.count("403\n") >= 2, "step 4 shows two refusals with 403")
        check("is not the patient in context" in out, "step 4 shows why another patient is refused")
        check("retrieved " in out and "bytes of multipart/related" in out,
              "the real SMART flow retrieved a study with the sandbox's token")
        check(re.search(r"^2\.25\.\d+(\.\d+)*\n[1-9]\d*\n400\n", out, re.M) is not None,
              "Backend Services: a system token found p2's study, retrieved its metadata, and 400 without a patient")
        check((ROOT / "keys/imaging-server.private.jwk.json").exists(), "keygen wrote the key, folder and all")
        mode = (ROOT / "keys").stat().st_mode & 0o777 if (ROOT / "keys").exists() else None
        check(mode == 0o700, f"keygen made the folder private (mode {oct(mode) if mode is not None else 'none'})")
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        server.wait(timeout=30)
        for o in OUTPUTS:
            (ROOT / o).unlink(missing_ok=True)
        try:
            (ROOT / "keys").rmdir()
        except OSError:
            pass
    return finish()


def finish():
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
