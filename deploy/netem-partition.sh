#!/usr/bin/env bash
# The partition scenario on a satellite-like network: a hub and two posts (Paris, Nairobi),
# each valise-relay in its own Linux network namespace, each post's link to the hub delayed
# and lossy with netem (600 ms round trip and 20 % loss by default, both ways).
#
#   1. Alice at Paris sends ROUTINE cables to Bob at Nairobi.
#   2. Paris's link is cut; Alice sends more ROUTINE cables, then a FLASH.
#   3. The hub is killed with SIGKILL, restarted, and Paris's link restored.
#   4. Bob must receive every cable exactly once, with the FLASH at the top of his inbox; the
#      script prints where in the hub's custody order the FLASH came.
#
# Needs root (namespaces, veth, tc) and the sch_netem kernel module; without netem, pass
# --no-netem to run the same partition on a clean network. Everything is removed on exit.
#
# Usage: sudo deploy/netem-partition.sh [--rtt-ms 600] [--loss 20] [--no-netem] [--keep DIR]
#        (binaries from target/release, built first; VALISE_BIN=dir to use others)

set -euo pipefail

RTT_MS=600
LOSS=20
NETEM=1
KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rtt-ms) RTT_MS="$2"; shift 2 ;;
    --loss) LOSS="$2"; shift 2 ;;
    --no-netem) NETEM=0; shift ;;
    --keep) KEEP="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "run as root: network namespaces and tc need it" >&2
  exit 2
fi

HERE="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${VALISE_BIN:-}" ]; then
  (cd "$HERE" && cargo build --release -q -p valise-relay -p valise-cli)
  VALISE_BIN="$HERE/target/release"
fi
RELAY="$VALISE_BIN/valise-relay"
VALISE="$VALISE_BIN/valise"

WORK="${KEEP:-$(mktemp -d)}"
mkdir -p "$WORK"
export VALISE_PASSPHRASE="netem scenario passphrase"
PIDS=()
NS=(vl-wan vl-hq vl-paris vl-nairobi)

cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -z "$KEEP" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# --- the network: a bridge in vl-wan, one veth per node ------------------------------------
say "namespaces: hq 10.77.0.1, paris 10.77.0.2, nairobi 10.77.0.3"
for ns in "${NS[@]}"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n vl-wan link add br0 type bridge
ip -n vl-wan link set br0 up
i=1
for node in hq paris nairobi; do
  ip link add "v-$node" type veth peer name "w-$node"
  ip link set "v-$node" netns "vl-$node"
  ip link set "w-$node" netns vl-wan
  ip -n vl-wan link set "w-$node" master br0 up
  ip -n "vl-$node" addr add "10.77.0.$i/24" dev "v-$node"
  ip -n "vl-$node" link set "v-$node" up
  i=$((i + 1))
done
if [ "$NETEM" = 1 ]; then
  # Half the round trip each way, on the post's side of its link and on the hub's side of it.
  half=$((RTT_MS / 2))
  for post in paris nairobi; do
    ip netns exec "vl-$post" tc qdisc add dev "v-$post" root netem delay "${half}ms" loss "${LOSS}%" \
      || fail "tc netem is not available (load sch_netem, or pass --no-netem)"
    ip netns exec vl-wan tc qdisc add dev "w-$post" root netem delay "${half}ms" loss "${LOSS}%"
  done
  say "netem: ${RTT_MS} ms round trip and ${LOSS} % loss each way on each post's link"
else
  say "netem: off (--no-netem)"
fi

# --- the nodes -----------------------------------------------------------------------------
cd "$WORK"
"$RELAY" ca init --ministry mfa.example --out ca >ca.txt
FINGERPRINT="$(sed -n 's/.*Root fingerprint: *//p' ca.txt)"
"$RELAY" ca issue-node --ca ca --name hq --kind hub --addr 10.77.0.1:4433 --out hq >/dev/null
for post in paris:2 nairobi:3; do
  "$RELAY" ca issue-node --ca ca --name "${post%:*}" --kind post --addr "10.77.0.${post#*:}:4433" \
    --hub 10.77.0.1:4433 --out "${post%:*}" >/dev/null
done

start() { # start <node>
  ip netns exec "vl-$1" "$RELAY" run --config "$1/node.toml" >"$1.out" 2>"$1.log" &
  PIDS+=("$!")
  eval "PID_$1=$!"
  disown "$!"
  for _ in $(seq 100); do grep -q "listening on" "$1.out" 2>/dev/null && return; sleep 0.1; done
  fail "node $1 did not start: $(cat "$1.log")"
}
start hq; start paris; start nairobi

# A diplomat's command, run inside their post's namespace with their own data folder.
as() { # as <user> <post> valise-args…
  local user="$1" post="$2"; shift 2
  VALISE_DATA_DIR="$WORK/$user" ip netns exec "vl-$post" "$VALISE" "$@"
}
enrol() { # enrol <user> <post> <n>
  local code
  code="$("$RELAY" enroll --config "$2/node.toml" --user "$1" --name "$1" --clearance SECRET --json \
    | sed -n 's/.*"code": *"\([^"]*\)".*/\1/p')"
  as "$1" "$2" enroll --node "10.77.0.$3:4433" --code "$code" --ca-fingerprint "$FINGERPRINT" >/dev/null
}
enrol alice paris 2
enrol bob nairobi 3

eventually() { # eventually <seconds> <what> <command…>
  local limit="$1" what="$2"; shift 2
  for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return; sleep 1; done
  fail "gave up after ${limit}s waiting for $what"
}
eventually 180 "bob@nairobi to replicate to Paris" \
  bash -c "VALISE_DATA_DIR='$WORK/alice' ip netns exec vl-paris '$VALISE' --json directory bob | grep -q bob@nairobi"

send() { # send <precedence> <subject>
  as alice paris --json send --to bob@nairobi --classification CONFIDENTIAL --precedence "$1" \
    --tags ADMN --subject "$2" --body "Text." | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p'
}

# --- the scenario --------------------------------------------------------------------------
say "3 ROUTINE cables, link up"
SENT=()
for i in 1 2 3; do SENT+=("$(send ROUTINE "Before $i")"); done

say "Paris's link cut; 8 ROUTINE and a FLASH queued at Paris"
ip -n vl-wan link set w-paris down
for i in 1 2 3 4 5 6 7 8; do SENT+=("$(send ROUTINE "During $i")"); done
FLASH="$(send FLASH "Evacuate now")"
SENT+=("$FLASH")
"$RELAY" status --config paris/node.toml

say "hub killed with SIGKILL and restarted; Paris's link restored"
kill -9 "$PID_hq"
start hq
ip -n vl-wan link set w-paris up

say "waiting for Bob to hold all ${#SENT[@]} cables"
count_inbox() {
  as bob nairobi --json inbox | grep -o '"id": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'
}
eventually 600 "all cables to reach Bob" bash -c "
  n=\$(VALISE_DATA_DIR='$WORK/bob' ip netns exec vl-nairobi '$VALISE' --json inbox | grep -o '\"id\"' | wc -l)
  [ \"\$n\" -ge ${#SENT[@]} ]"
INBOX="$(count_inbox)"
[ "$(echo "$INBOX" | sort | uniq -d | wc -l)" = 0 ] || fail "a cable arrived twice"
for id in "${SENT[@]}"; do echo "$INBOX" | grep -qx "$id" || fail "cable $id was lost"; done
[ "$(echo "$INBOX" | head -1)" = "$FLASH" ] || fail "the FLASH is not at the top of Bob's inbox"

ORDER="$("$RELAY" audit show --config hq/node.toml --last 100000 | grep CustodyTaken | grep Success \
  | sed -n 's/.*envelope:\([0-9a-f]*\).*/\1/p')"
FLASH_AT="$(echo "$ORDER" | grep -nx "$FLASH" | cut -d: -f1)"
# Informative: with the default window of 32, the queued cables leave together and the FLASH
# goes on the most urgent stream, so it is among the first the hub makes durable.
echo "the hub took custody of the FLASH ${FLASH_AT:-?}th of $(echo "$ORDER" | wc -l) custody events"
echo "(3 ROUTINE sent before the cut come first)"

say "PASSED: ${#SENT[@]} cables, each once, FLASH first; Paris status after healing:"
"$RELAY" status --config paris/node.toml
