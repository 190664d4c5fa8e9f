#!/bin/sh
# sdc bench ingest at K = 1, 8, 32 samples per frame in one run each (decision 0004, "Batches"),
# embedded stores and Redis + MariaDB (database h1_ingest), in both orders of K; one TSV line per row.
# Run from the repository root after `node scripts/build.mjs`.
set -e
out=docs/data/ingest-2026-12-05-h1-batches
tsv=$out/runs.tsv
[ -f "$tsv" ] || printf 'run\tstores\tload1\tverify_per_s\tK\tsamples_per_s\tframes_per_s\tratio\tcpu_us\tservice_cpu_us\tbacklog_start\tbacklog_end\trows_per_insert\tsql_per_sample\twindow\n' > "$tsv"
run() { # name, K list, extra args
  load=$(cut -d' ' -f1 /proc/loadavg)
  nice -n 10 node bin/sdc.js bench ingest --json --modes session-mac --samples-per-frame "$2" --duration 8s $3 > "$out/$1.json"
  python3 - "$out/$1.json" "$1" "$load" >> "$tsv" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = d['details']['ed25519_verify_per_s']
for r in d['results']:
    print('\t'.join(str(x) for x in [sys.argv[2], r['stores'], sys.argv[3], v, r['samples_per_frame'], round(r['samples_per_s']), round(r['frames_per_s']),
        round(r['ratio_to_ed25519_verify'], 2), round(r['cpu_us_per_sample'], 1), round(r['service_cpu_us_per_sample'], 1), r['backlog_at_start'], r['backlog_at_end'],
        round(r['rows_per_telemetry_insert'], 1), round(r['sql_statements_per_sample'], 4), r['window_frames']]))
PY
}
db="--redis redis://127.0.0.1:6379 --mysql mysql://root@127.0.0.1:3306/h1_ingest"
for round in 1 2; do
  run "embedded-up-$round" 1,8,32 ""
  run "redis-up-$round" 1,8,32 "$db"
  run "embedded-down-$round" 32,8,1 ""
  run "redis-down-$round" 32,8,1 "$db"
done
run "redis-window8000" 1,32 "$db --window 8000"
