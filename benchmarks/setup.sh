#!/usr/bin/env bash
# Set up what the benchmarks need; idempotent (a second run only checks).
#   benchmarks/.venv-peers : the contenders we compare against, in their own venv so the
#                            original s3dlio (module name "s3dlio") never shadows ours, plus the
#                            moto S3 server under gunicorn for the PUT suites.
#   benchmarks/.venv-mosaic: mosaicml-streaming (the streaming suite's peer) in a venv of its
#                            own: it imports torchvision, and PyPI's torchvision wheels only load
#                            against PyPI's torch of the same release (against the peers' torch
#                            2.13.0+cpu: "operator torchvision::nms does not exist"), so it gets
#                            such a pair (CUDA builds, ~6 GB; they run on the CPU here). Its
#                            failure is not fatal: that row then says "skipped".
#   nginx, wrk, tinyproxy  : Debian packages (the GET endpoint, the wire-limit probe, the
#                            forward proxy of the s3-proxy suite).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=benchmarks/.venv-peers
STAMP="$VENV/.installed-v7"
PEERS=(
  "s3dlio==0.10.0"
  "s3torchconnector[dcp]"
  "tfrecord"
  "boto3"
  "s3transfer"
  "numpy"
  "torch==2.13.0"
  "moto[server]"
  "gunicorn"
  "pyarrow"
  "webdataset"
  "litdata"
  "obstore"
  "s3fs>=2025.1"
  # aiobotocore (s3fs) pins botocore to a few patch releases; without these three pins pip
  # backtracks through every moto release (tens of minutes) instead of picking boto3's match.
  "aiobotocore==3.10.0"
  "boto3==1.43.117"
  "botocore==1.43.117"
)

if [ ! -f "$STAMP" ]; then
  test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
  echo "benchmarks: installing the peers into $VENV (log: $VENV/pip.log)"
  if ! "$VENV/bin/python" -m pip install "${PEERS[@]}" >"$VENV/pip.log" 2>&1; then
    grep -v "is ignored" "$VENV/pip.log" | tail -30 >&2
    exit 1
  fi
  touch "$STAMP"
fi

MOSAIC=benchmarks/.venv-mosaic
MOSAIC_STAMP="$MOSAIC/.installed-v1"
MOSAIC_PEERS=("mosaicml-streaming==0.13.0" "torch==2.14.1" "torchvision==0.29.1")
if [ ! -f "$MOSAIC_STAMP" ]; then
  test -x "$MOSAIC/bin/python" || "$PYTHON" -m venv "$MOSAIC"
  echo "benchmarks: installing mosaicml-streaming into $MOSAIC (log: $MOSAIC/pip.log)"
  if "$MOSAIC/bin/python" -m pip install "${MOSAIC_PEERS[@]}" >"$MOSAIC/pip.log" 2>&1; then
    touch "$MOSAIC_STAMP"
  else
    grep -v "is ignored" "$MOSAIC/pip.log" | tail -10 >&2
    echo "benchmarks: mosaicml-streaming not installed (its benchmark rows will be skipped)" >&2
  fi
fi

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || missing+=(tinyproxy)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # The Debian package starts a system nginx on port 80; the benchmarks run their own.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx 2>/dev/null || true; fi
  else
    echo "benchmarks: missing ${missing[*]} (install them, or the suites that need them say so)" >&2
  fi
fi
