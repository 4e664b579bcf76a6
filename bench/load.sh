#!/usr/bin/env bash
# Load benchmark of ownid_sessions against Caddy's own handlers, in one run
# of one Caddy binary, on loopback only. Each pair (baseline, module) is run
# alternately ROUNDS times for DURATION each; the script prints req/s and
# latency percentiles per run and the ratio module/baseline of the medians.
#
#   bench/load.sh [path-to-caddy]     (make bench builds ./bin/caddy first)
#
# Environment: ROUNDS (3), DURATION (5s), CONNECTIONS ("16 64": each count
# is a run of its own), THREADS (1). With two cores or more, Caddy runs on
# the first half of the cores and wrk and Redis on the rest (taskset), so
# the load generator does not take Caddy's CPU and the figures repeat.
set -euo pipefail
cd "$(dirname "$0")/.."

CADDY=${1:-./bin/caddy}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-16 64}
THREADS=${THREADS:-1}

cores=$(nproc)
pin_caddy=() pin_load=()
if [ "$cores" -ge 2 ] && command -v taskset >/dev/null; then
	half=$((cores / 2))
	pin_caddy=(taskset -c "0-$((half - 1))")
	pin_load=(taskset -c "$half-$((cores - 1))")
fi

for tool in wrk redis-server; do
	if ! command -v $tool >/dev/null; then
		echo "installing $tool (Debian package)" >&2
		apt-get install -y -qq $tool >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq $tool >/dev/null; }
	fi
done

work=$(mktemp -d)
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 16399)
"${pin_load[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
export OWNID_BENCH_REDIS="redis://127.0.0.1:$redis_port/0"
export OWNID_BENCH_SECRET=$(head -c 32 /dev/urandom | base64)
export XDG_CONFIG_HOME=$work/config XDG_DATA_HOME=$work/data
"${pin_caddy[@]}" "$CADDY" run --config bench/Caddyfile --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
trap 'kill $caddy_pid $redis_pid 2>/dev/null; wait $caddy_pid $redis_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
	curl -sf -o /dev/null http://127.0.0.1:9101/ && break
	sleep 0.1
done

token=$("$CADDY" ownid-token --secret "$OWNID_BENCH_SECRET" --sub bench --ttl 1h)
body='{"payload":{"preferences":{"theme":"dark","resolution":"wide"}}}'
sid=$(curl -sf -X POST http://127.0.0.1:9102/app/accounts/sessions \
	-H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$body" |
	sed 's/.*"id":"\([^"]*\)".*/\1/')
[ -n "$sid" ] || { echo "could not create the benchmark session" >&2; cat "$work/caddy.log" >&2; exit 1; }
rsid=$(curl -sf -X POST http://127.0.0.1:9105/app/accounts/sessions \
	-H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$body" |
	sed 's/.*"id":"\([^"]*\)".*/\1/')
[ -n "$rsid" ] || { echo "could not create the Redis benchmark session" >&2; cat "$work/caddy.log" "$work/redis.log" >&2; exit 1; }

cat >"$work/put.lua" <<LUA
wrk.method = "PUT"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA

# cpu_ticks: the CPU time Caddy's process has used (user + system), in
# clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$caddy_pid/stat"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))

# run NAME URL: one wrk run at $conns connections; prints "req/s p50 p99"
# and the CPU time Caddy spent per request, and keeps both under NAME. CPU
# per request does not count time the machine gave to others (a virtual
# machine's steal), which moves req/s from one run to the next.
run() {
	local out rps p50 p99 before after requests cpu
	before=$(cpu_ticks)
	out=$("${pin_load[@]}" wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency -s "$work/put.lua" "$2")
	after=$(cpu_ticks)
	requests=$(awk '/requests in/ {print $1}' <<<"$out")
	cpu=$(awk -v t=$((after - before)) -v us="$tick_us" -v n="$requests" 'BEGIN {printf "%.1f", t * us / n}')
	rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
	p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
	if grep -q "Non-2xx" <<<"$out"; then
		echo "$1: answers other than 2xx:" >&2
		grep "Non-2xx" <<<"$out" >&2
		exit 1
	fi
	printf '  %-22s %10s req/s   p50 %-9s p99 %-9s Caddy CPU %s µs/request\n' "$1" "$rps" "$p50" "$p99" "$cpu"
	echo "$rps" >>"$work/$1"
	echo "$cpu" >>"$work/$1.cpu"
}

median() { sort -n "$work/$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# paired FILE1 FILE2: the median of the rounds' ratios FILE1/FILE2.
paired() {
	paste "$work/$1" "$work/$2" | awk '{print $1 / $2}' | sort -n |
		awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]}'
}

pinned="not pinned"
[ ${#pin_caddy[@]} -gt 0 ] && pinned="Caddy on cores ${pin_caddy[2]}, wrk and Redis on ${pin_load[2]}"
echo "ownid_sessions load benchmark: $ROUNDS rounds x $DURATION, connections $CONNECTIONS, $cores cores, $pinned"
conns=16
run warmup-respond http://127.0.0.1:9101/ >/dev/null
run warmup-serve "http://127.0.0.1:9102/app/accounts/sessions/$sid" >/dev/null

for conns in $CONNECTIONS; do
	for round in $(seq "$ROUNDS"); do
		echo "$conns connections, round $round"
		# Pairs back to back, the baseline first in odd rounds and second
		# in even ones, so that drift does not favour either.
		if [ $((round % 2)) -eq 1 ]; then
			run "respond-$conns" "http://127.0.0.1:9101/app/accounts/sessions/$sid"
			run "serve-put-$conns" "http://127.0.0.1:9102/app/accounts/sessions/$sid"
			run "reverse_proxy-$conns" "http://127.0.0.1:9103/app/accounts/sessions/$sid"
			run "forward-put-$conns" "http://127.0.0.1:9104/app/accounts/sessions/$sid"
		else
			run "serve-put-$conns" "http://127.0.0.1:9102/app/accounts/sessions/$sid"
			run "respond-$conns" "http://127.0.0.1:9101/app/accounts/sessions/$sid"
			run "forward-put-$conns" "http://127.0.0.1:9104/app/accounts/sessions/$sid"
			run "reverse_proxy-$conns" "http://127.0.0.1:9103/app/accounts/sessions/$sid"
		fi
		run "serve-put-redis-$conns" "http://127.0.0.1:9105/app/accounts/sessions/$rsid"
	done
done

# The ratio of each round's pair (run back to back) is steadier than the
# ratio of medians when the machine's speed drifts; both are printed.
echo
echo "medians (req/s) and ratios (module / baseline)"
for conns in $CONNECTIONS; do
	for pair in "serve-put respond 0.80" "forward-put reverse_proxy 0.90" "serve-put-redis respond 0.60"; do
		read -r mod base goal <<<"$pair"
		mod=$mod-$conns base=$base-$conns
		m=$(median "$mod")
		b=$(median "$base")
		paired=$(paired "$mod" "$base")
		awk -v m="$m" -v b="$b" -v mod="$mod" -v base="$base" -v goal="$goal" -v paired="$paired" 'BEGIN {
			printf "  %-18s %10.0f  vs %-17s %10.0f  ratio of medians %.2f, median of round ratios %s (goal %s)\n", mod, m, base, b, m / b, paired, goal
		}'
	done
done
# The same pairs by Caddy's CPU time per request (baseline / module: what
# the ratio of req/s would be if Caddy's core were all it had, and never
# taken from it). For the Redis route Redis's own CPU is not counted.
echo
echo "Caddy CPU per request (µs, medians) and ratios (baseline / module)"
for conns in $CONNECTIONS; do
	for pair in "serve-put respond" "forward-put reverse_proxy" "serve-put-redis respond"; do
		read -r mod base <<<"$pair"
		mod=$mod-$conns base=$base-$conns
		m=$(median "$mod.cpu")
		b=$(median "$base.cpu")
		paired=$(paired "$base.cpu" "$mod.cpu")
		awk -v m="$m" -v b="$b" -v mod="$mod" -v base="$base" -v paired="$paired" 'BEGIN {
			printf "  %-18s %8.1f  vs %-17s %8.1f  ratio of medians %.2f, median of round ratios %s\n", mod, m, base, b, b / m, paired
		}'
	done
done
