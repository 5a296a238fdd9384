#!/usr/bin/env bash
# Makes (once) a Python virtual environment under this clone, .ci-python/venv, holding perago
# for Python 0.6.1 from PyPI, for the tests that chain Python and Deno perago tasks in one
# workflow; prints the path of its python. Idempotent: an existing venv with that version is
# reused at once. Exits 1 with one line on stderr saying why when it cannot (no python3 >= 3.10,
# no venv module, PyPI unreachable).
set -uo pipefail
cd "$(dirname "$0")/.."
VERSION=0.6.1
VENV="$(pwd)/.ci-python/venv"
PY="$VENV/bin/python"

installed() {
  [ -x "$PY" ] && "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('perago') != '$VERSION')" 2>/dev/null
}

if installed; then echo "$PY"; exit 0; fi
python=$(command -v python3 || true)
if [ -z "$python" ]; then echo "perago_python: python3 not found on PATH" >&2; exit 1; fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "perago_python: perago $VERSION needs Python >= 3.10; $python is $("$python" --version 2>&1)" >&2
  exit 1
fi
rm -rf "$VENV"
if ! "$python" -m venv "$VENV" >/dev/null 2>.ci-python.log; then
  echo "perago_python: python3 -m venv failed: $(tail -n 1 .ci-python.log)" >&2
  exit 1
fi
if ! "$VENV/bin/pip" install --quiet --disable-pip-version-check "perago==$VERSION" >>.ci-python.log 2>&1; then
  echo "perago_python: pip install perago==$VERSION failed (is PyPI reachable?): $(tail -n 1 .ci-python.log)" >&2
  exit 1
fi
if ! installed; then echo "perago_python: perago $VERSION did not install into $VENV" >&2; exit 1; fi
echo "$PY"
