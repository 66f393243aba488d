#!/usr/bin/env bash
# The interop suite (tests/interop/run.py): builds the binary, makes a virtual environment under
# target/interop-venv with the pinned clients of requirements.txt, and runs the suite against the sample
# data. Its last line is `N passed, N failed`; it exits non-zero when any case failed.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=target/interop-venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
cargo build --locked --quiet
exec "$VENV/bin/python" tests/interop/run.py "$@"
