#!/usr/bin/env bash
# The browser benchmark of docs/BENCHMARKS.md ("The browser gets the game's
# bytes"): WebSocket viewers of dgate's /ws/spectate, and of asciinema's live
# stream (asciinema 3, `stream --local`) running the same firehose, in one
# sitting, rounds interleaved so that a noisy minute hits every system alike.
#
#   scripts/bench-browser.sh                      # dgate as built in target/release
#   BEFORE=/path/to/old/dgate-bench scripts/bench-browser.sh   # and an older build
#
# Environment: AFTER, BEFORE (dgate-bench binaries; each starts the
# dgate-server beside it), ASCIINEMA (the asciinema 3 binary; skipped when
# absent), ROUNDS (3), MEASURE (seconds measured, 15), VIEWERS ("100 500"),
# OUT (the JSON files and the summary, ./bench-browser). Loopback only; every
# process it starts it stops.
set -euo pipefail
cd "$(dirname "$0")/.."

AFTER="${AFTER:-target/release/dgate-bench}"
BEFORE="${BEFORE:-}"
ASCIINEMA="${ASCIINEMA:-$(command -v asciinema || true)}"
ROUNDS="${ROUNDS:-3}"
MEASURE="${MEASURE:-15}"
VIEWERS="${VIEWERS:-100 500}"
OUT="${OUT:-bench-browser}"
PORT="${PORT:-18999}"
mkdir -p "$OUT"

# name, terminal size, bytes per frame, and the firehose's extra flag
CASES=("scroll 180x50 230 --scroll" "nethack 80x24 200 -")

systems=(after)
[ -n "$BEFORE" ] && systems+=(before)
if [ -n "$ASCIINEMA" ] && "$ASCIINEMA" --version 2>/dev/null | grep -q "asciinema 3"; then
    systems+=(asciinema)
else
    echo "no asciinema 3 (cargo install asciinema): measuring dgate only" >&2
fi

dgate_run() { # binary case size bytes flag viewers file
    local flag=()
    [ "$5" != "-" ] && flag=("$5")
    "$1" run --transport ws --viewers "$6" --size "$3" "${flag[@]}" --rate 30 \
        --bytes "$4" --seconds "$MEASURE" --check 10 --json > "$7"
}

asciinema_run() { # case size bytes flag viewers file
    local cols="${2%x*}" rows="${2#*x}" flag=""
    [ "$4" != "-" ] && flag="$4"
    local home
    home="$(mktemp -d)"
    HOME="$home" "$ASCIINEMA" stream --local "127.0.0.1:$PORT" --headless \
        --window-size "$2" --command "$AFTER firehose $flag --rate 30 --bytes $3 \
        --cols $cols --rows $rows --max-seconds $((MEASURE + 120))" > "$home/log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        grep -q "Live streaming" "$home/log" 2>/dev/null && break
        sleep 0.1
    done
    sleep 1
    "$AFTER" alis --url "ws://127.0.0.1:$PORT/ws" --viewers "$5" --seconds "$MEASURE" \
        --server-pid "$pid" --json > "$6" || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$home"
}

for round in $(seq "$ROUNDS"); do
    for c in "${CASES[@]}"; do
        read -r name size bytes flag <<< "$c"
        for n in $VIEWERS; do
            for system in "${systems[@]}"; do
                file="$OUT/$system-$name-$n-$round.json"
                echo "round $round: $system, $name $size, $n viewers" >&2
                case "$system" in
                    after) dgate_run "$AFTER" "$name" "$size" "$bytes" "$flag" "$n" "$file" ;;
                    before) dgate_run "$BEFORE" "$name" "$size" "$bytes" "$flag" "$n" "$file" ;;
                    asciinema) asciinema_run "$name" "$size" "$bytes" "$flag" "$n" "$file" ;;
                esac
            done
        done
    done
done

# Medians over the rounds: one line per system, case and viewer count.
python3 - "$OUT" <<'EOF' | tee "$OUT/summary.md"
import glob, json, os, statistics, sys
out = sys.argv[1]
rows = {}
for path in glob.glob(os.path.join(out, "*.json")):
    system, name, n, _ = os.path.basename(path)[:-5].split("-")
    try:
        r = json.load(open(path))
    except ValueError:
        continue
    server = r.get("server") or {}
    fig = {
        "p50": r["latency"]["p50_ms"],
        "p99": r["latency"]["p99_ms"],
        "cpu": r.get("server_cpu_us_per_viewer_frame"),
        "bps": r.get("bytes_per_viewer_per_second"),
        "rss": server.get("rss_kib_per_viewer", r.get("rss_kib_per_viewer")),
        "join": r["join_ms"]["max_ms"],
        "sound": r.get("screens_differing", 0) == 0 and r.get("viewers_total", {}).get("lost", r.get("lost", 0)) == 0,
    }
    rows.setdefault((name, int(n), system), []).append(fig)
def med(figs, key):
    values = [f[key] for f in figs if f[key] is not None]
    return statistics.median(values) if values else float("nan")
print("| case | viewers | system | runs | p50 ms | p99 ms | server µs per viewer-frame | bytes per viewer per s | RSS KiB per viewer | join max ms | sound |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (name, n, system) in sorted(rows):
    figs = rows[(name, n, system)]
    print(f"| {name} | {n} | {system} | {len(figs)} | {med(figs,'p50'):.1f} | {med(figs,'p99'):.1f} | "
          f"{med(figs,'cpu'):.1f} | {med(figs,'bps'):.0f} | {med(figs,'rss'):.1f} | {med(figs,'join'):.0f} | "
          f"{all(f['sound'] for f in figs)} |")
EOF
