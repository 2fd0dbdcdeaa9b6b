#!/usr/bin/env bash
# Usage: scripts/require_disk.sh GIB DIR WHAT
# Fails in one line when DIR's file system has less than GIB GiB free: a setup that runs out of
# disk halfway leaves a broken environment and pip's "[Errno 28]" far from the reason.
set -euo pipefail
need_gib="$1" dir="$2" what="$3"
mkdir -p "$dir"
free_kib="$(df -Pk "$dir" | awk 'NR == 2 {print $4}')"
if [ "$free_kib" -lt $((need_gib * 1024 * 1024)) ]; then
    echo "error: $what needs about $need_gib GiB free in $dir; it has $((free_kib / 1024)) MiB" >&2
    exit 2
fi
