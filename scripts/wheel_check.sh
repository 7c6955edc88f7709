#!/usr/bin/env bash
# Build sdist + wheel and prove the wheel works on its own: install it (without dependencies)
# into a scratch venv that borrows the locked dependencies of the dev venv, then run the CLI and
# the README quick start from a folder outside the checkout.
set -euo pipefail
PY=${1:-.venv/bin/python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
rm -rf "$ROOT/dist"
"$PY" -m build --sdist --wheel --outdir "$ROOT/dist" "$ROOT" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$ROOT"/dist/prunekit-*.whl)
python3 -m venv "$WORK/venv"
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
VSITE=$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# Borrow the dependencies only: a path entry is appended after the venv's own site-packages, and
# the dev venv's editable-install .pth files are not processed from it.
echo "$SITE" > "$VSITE/_borrowed_deps.pth"
"$WORK/venv/bin/python" -m pip install -q --no-deps --no-index "$WHEEL"
cd "$WORK"
where=$("$WORK/venv/bin/python" -c 'import prunekit, pathlib; print(pathlib.Path(prunekit.__file__).parent)')
case "$where" in "$VSITE"*) ;; *) echo "prunekit imported from $where, not the wheel"; exit 1;; esac
test -f "$where/py.typed" || { echo "py.typed missing from the wheel"; exit 1; }
"$WORK/venv/bin/prunekit" --version
"$WORK/venv/bin/python" "$ROOT/scripts/quickstart.py"
echo "wheel OK: $(basename "$WHEEL")"
