#!/usr/bin/env bash
# `make dist`: the release check. Builds the sdist and the wheel (the wheel from the sdist, so
# the sdist must be complete), fails on a deprecation warning from the build, runs
# `twine check --strict`, then installs the wheel into two fresh venvs (no extras; [all]) and
# runs scripts/smoke_dist.py in each. Output: dist/ (the two files); work files in
# build/dist-check/ (logs, venvs), kept for inspection and replaced by the next run (deleting
# the two venvs, ~1.5 GB, took 30-90 s on a busy 2-core machine: not worth doing twice).
#
# Fresh venvs get their packages the way a user's pip would: pip's own cache and the machine's
# pip configuration (find-links, extra index) are used as they are, so torch==2.13.0 comes from
# the local CPU wheel when one is configured, and repeated runs download nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-.venv/bin/python}   # has build and twine (the dev extra)
PYTHON=${PYTHON:-python3}    # makes the fresh venvs
OUT=$ROOT/${DIST_DIR:-dist}
WORK=$ROOT/build/dist-check
start=$SECONDS

step() { printf '\n== %s (%ds)\n' "$1" $((SECONDS - start)); }
run_logged() {  # run_logged LOG CMD...: quiet unless it fails
    local log=$1; shift
    if ! "$@" >"$log" 2>&1; then
        cat "$log"; echo "failed: $* (log: $log)"; exit 1
    fi
}

rm -rf "$OUT" "$WORK"
mkdir -p "$OUT" "$WORK"

step "build the sdist, then the wheel from it"
run_logged "$WORK/build.log" "$PY" -m build --outdir "$OUT" .
if grep -n -i "deprecat" "$WORK/build.log"; then
    echo "the build printed a deprecation warning (above; full log $WORK/build.log)"; exit 1
fi
sdist=$(ls "$OUT"/*.tar.gz)
# The package's files as git knows them (none outside a git checkout): each must reach the
# sdist and the wheel (package data such as py.typed or a config file an integration reads).
: >"$WORK/package-files.txt"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -- s3dlio >"$WORK/package-files.txt"
fi
wheel=$(ls "$OUT"/*.whl)
ls -l "$sdist" "$wheel"

step "twine check"
"$PY" -m twine check --strict "$sdist" "$wheel"

for extras in none all; do
    venv=$WORK/venv-$extras
    spec=$wheel
    [ "$extras" = all ] && spec="$wheel[all]"
    step "fresh venv, pip install ${spec##*/}"
    "$PYTHON" -m venv "$venv"
    run_logged "$WORK/pip-$extras.log" "$venv/bin/python" -m pip install --no-compile "$spec"
    step "smoke checks, $extras extras"
    # -I and a neutral directory: the installed package, never the source tree, is imported.
    (cd "$WORK" && "$venv/bin/python" -I "$ROOT/scripts/smoke_dist.py" --extras "$extras" \
        --package-files "$WORK/package-files.txt" \
        ${sdist:+--sdist "$sdist"})
    sdist=  # the sdist's contents are checked once
done

step "make dist passed: $(basename "$wheel") and $(basename "$(ls "$OUT"/*.tar.gz)")"
