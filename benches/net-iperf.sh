#!/usr/bin/env bash
# TCP throughput container-to-container over a hull bridge (two netns attached by hull-cni)
# vs a bare veth pair between two netns, and vs the host's loopback; iperf3, T seconds each
# (default 5), reported with ratios. All traffic stays inside namespaces made here or on lo.
# Needs: root, iproute2, iperf3, python3, a release hull-cni
# (cargo build --release -p hull-net --bin hull-cni).
set -euo pipefail
T=${T:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
HULL_CNI=${HULL_CNI:-$HERE/target/release/hull-cni}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 0; }
command -v iperf3 >/dev/null || { echo "SKIP: iperf3 missing (apt-get install iperf3)"; exit 0; }
[ -x "$HULL_CNI" ] || { echo "missing $HULL_CNI"; exit 1; }

TMP=$(mktemp -d /tmp/hull-bench-iperf.XXXXXX)
SUBNET=10.249.0.0/24
A=hullipa$$; B=hullipb$$; C=hullipc$$; D=hullipd$$
BR=hullipbr$$; VC=hullvc$$; VD=hullvd$$
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  for ns in $A $B; do
    CNI_COMMAND=DEL CNI_CONTAINERID=$ns CNI_NETNS=/run/netns/$ns CNI_IFNAME=eth0 \
      "$HULL_CNI" < "$TMP/conf.json" >/dev/null 2>&1 || true
  done
  for ns in $A $B $C $D; do ip netns del "$ns" 2>/dev/null || true; done
  ip link del "$BR" 2>/dev/null || true
  # hull-cni has no network removal: drop its subnet from hull's nftables set.
  nft delete element ip hull nets "{ $SUBNET }" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

cat > "$TMP/conf.json" <<JSON
{"cniVersion":"1.0.0","name":"iperfbench","type":"hull-cni","bridge":"$BR","isGateway":true,
 "ipMasq":false,"hullRoot":"$TMP/root","ipam":{"subnet":"$SUBNET"}}
JSON
for ns in $A $B $C $D; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
for ns in $A $B; do
  CNI_COMMAND=ADD CNI_CONTAINERID=$ns CNI_NETNS=/run/netns/$ns CNI_IFNAME=eth0 \
    "$HULL_CNI" < "$TMP/conf.json" > "$TMP/$ns.json"
done
A_IP=$(python3 -c "import json,sys; print(json.load(open('$TMP/$A.json'))['ips'][0]['address'].split('/')[0])")

ip link add "$VC" netns "$C" type veth peer name "$VD" netns "$D"
ip -n "$C" addr add 10.249.1.1/24 dev "$VC"; ip -n "$C" link set "$VC" up
ip -n "$D" addr add 10.249.1.2/24 dev "$VD"; ip -n "$D" link set "$VD" up

gbps() { python3 -c "import json,sys; print('%.2f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e9))"; }
measure() { # server-ns client-ns address
  if [ -n "$1" ]; then ip netns exec "$1" iperf3 -s -1 >/dev/null 2>&1 & else iperf3 -s -1 -B 127.0.0.1 >/dev/null 2>&1 & fi
  SERVER_PID=$!
  sleep 0.5
  if [ -n "$2" ]; then ip netns exec "$2" iperf3 -c "$3" -t "$T" -J; else iperf3 -c "$3" -t "$T" -J; fi | gbps
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
bridge=$(measure "$A" "$B" "$A_IP")
veth=$(measure "$C" "$D" 10.249.1.1)
lo=$(measure "" "" 127.0.0.1)
printf '%-34s %10s\n' path "Gbit/s"
printf '%-34s %10s\n' "hull bridge (netns -> netns)" "$bridge"
printf '%-34s %10s\n' "bare veth pair (netns -> netns)" "$veth"
printf '%-34s %10s\n' "host loopback" "$lo"
printf 'bridge / veth = %.0f%%   bridge / loopback = %.0f%%\n' \
  "$(echo "100 * $bridge / $veth" | bc -l)" "$(echo "100 * $bridge / $lo" | bc -l)"
