#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# tc-merge's archive copy into PostgreSQL against plain COPY, in the same run on the same server
# (issue 17: within 15% of `psql \copy`). Opt-in, not part of ctest:
#   tests/merge/bench_copy.sh [BUILD_DIR] [MESSAGES_PER_SOURCE]
# BUILD_DIR defaults to build/release (ASan is 2-3x slower), MESSAGES_PER_SOURCE to 250000.
# Two sources of MESSAGES_PER_SOURCE messages each (tc-merge testdata, 200 rooms, a ~70 kB body
# every 1000th) are merged by `tc-merge merge` (metadata, copy, verification of every room); the
# same archive rows, exported to a file first, are loaded by `psql \copy` into an empty
# tc_archive with the same indexes. The server runs with fsync, full_page_writes and
# synchronous_commit on. Prints rows/s for both and their ratio.
set -euo pipefail
build=${1:-build/release}
messages=${2:-250000}
merge_bin=$build/merge-tool/tc-merge
pg_bin=$build/tests/support/tc-test-pg
work=$(mktemp -d /tmp/tc-merge-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT

coproc PG { "$pg_bin"; }
read -r url <&"${PG[0]}"
base=${url%/*}
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_q "$url" -c "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET full_page_writes = on" \
  -c "ALTER SYSTEM SET synchronous_commit = on" -c "ALTER SYSTEM SET max_wal_size = '4GB'" \
  -c "SELECT pg_reload_conf()" >/dev/null
for db in src_a src_b target plain; do
  psql_q "$url" -c "CREATE DATABASE $db"
done

echo "generating 2 x $messages messages ..."
"$merge_bin" testdata --source-a "$base/src_a" --source-b "$base/src_b" --rooms 200 \
  --messages "$messages" --large-every 1000 >/dev/null 2>&1
# The schema of the target (tc_archive with its indexes) in both targets.
"$merge_bin" --target "$base/plain" jobs add --source-a "$base/src_a" --source-b "$base/src_b" \
  >/dev/null 2>&1
"$merge_bin" --target "$base/target" jobs add --source-a "$base/src_a" --source-b "$base/src_b" \
  >/dev/null 2>&1
"$merge_bin" --target "$base/target" validate 1 >/dev/null 2>&1

columns="room_jid, stanza_id, sender_nick, sender_jid, kind, stanza_xml, created_at"
for src in src_a src_b; do
  psql_q "$base/$src" -c "\\copy (SELECT $columns FROM tc_archive ORDER BY room_jid, seq) TO STDOUT" \
    >>"$work/rows.copy"
done
rows=$(wc -l <"$work/rows.copy")
bytes=$(stat -c %s "$work/rows.copy")
psql_q "$url" -c "CHECKPOINT"

start=$(date +%s.%N)
psql_q "$base/plain" -c "\\copy tc_archive ($columns) FROM '$work/rows.copy'"
end=$(date +%s.%N)
copy_s=$(echo "$end - $start" | bc -l)
psql_q "$url" -c "CHECKPOINT"

start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$work/rss" "$merge_bin" --target "$base/target" merge 1 \
  --progress none 2>&1 | while IFS= read -r line; do
  printf '%s %s\n' "$(date +%s.%N)" "$line"
done >"$work/merge.log"
end=$(date +%s.%N)
# When the copy ended and verification began (the line merge prints between the two).
verify_at=$(awk '/verifying/ {print $1; exit}' "$work/merge.log")
merge_s=$(echo "$end - $start" | bc -l)
grep -q "0 rooms failed verification" "$work/merge.log" || { cat "$work/merge.log"; exit 1; }
merged=$(psql -X -At "$base/target" -c "SELECT count(*) FROM tc_archive")
[ "$merged" = "$rows" ] || { echo "target has $merged rows, expected $rows"; exit 1; }

printf 'rows: %d (%.0f bytes each on average)\n' "$rows" "$(echo "$bytes / $rows" | bc -l)"
printf 'psql \\copy:  %6.2f s  %8.0f rows/s\n' "$copy_s" "$(echo "$rows / $copy_s" | bc -l)"
printf 'tc-merge:    %6.2f s  %8.0f rows/s  (whole merge run: metadata, copy, verification; peak RSS %d kB)\n' \
  "$merge_s" "$(echo "$rows / $merge_s" | bc -l)" "$(cat "$work/rss")"
printf '  of which verification (reading the target back): %.2f s\n' "$(echo "$end - $verify_at" | bc -l)"
printf 'tc-merge / \\copy: %.2f\n' "$(echo "$copy_s / $merge_s" | bc -l)"
