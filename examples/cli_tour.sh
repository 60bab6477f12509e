#!/usr/bin/env bash
# A tour of s3-cli on any backend: bash examples/cli_tour.sh [URI_PREFIX]
# (default: a temp directory; s3://, az://, gs:// prefixes use the environment's credentials)
set -euo pipefail
CLI=${S3_CLI:-s3-cli}
if [[ $# -ge 1 ]]; then
  ROOT="${1%/}/"
else
  TMP=$(mktemp -d /tmp/s3dlio-cli-XXXXXX); trap 'rm -rf "$TMP"' EXIT
  ROOT="file://$TMP/data/"
fi
WORK=$(mktemp -d /tmp/s3dlio-cli-work-XXXXXX); trap 'rm -rf "$WORK" ${TMP:+"$TMP"}' EXIT

$CLI put "${ROOT}gen/" -n 8 -s 256KiB -o npz          # 8 synthetic NPZ objects
$CLI ls -l "${ROOT}gen/"
$CLI stat "${ROOT}gen/object_0_of_8.dat"
$CLI get "${ROOT}gen/" --bench                         # read everything, report throughput
mkdir -p "$WORK/up/sub" && echo hello > "$WORK/up/a.txt" && echo world > "$WORK/up/sub/b.txt"
$CLI upload "$WORK/up/**" "${ROOT}up/"                 # keeps the tree below up/
$CLI ls -r "${ROOT}up/"
$CLI cp "${ROOT}up/a.txt" "${ROOT}copied/a.txt"
$CLI download "${ROOT}up/" "$WORK/down"
cat "$WORK/down/sub/b.txt"
$CLI --op-log "$WORK/ops.tsv.zst" ls -r --count-only "$ROOT"
$CLI rm -r "$ROOT"
