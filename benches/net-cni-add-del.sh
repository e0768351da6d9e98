#!/usr/bin/env bash
# hull-cni ADD/DEL vs the reference CNI plugins (Debian containernetworking-plugins), chained
# as podman's CNI config chains them: bridge (with host-local IPAM) then portmap.
# Both sides: isGateway, hairpinMode, one published port on 127.0.0.1, no masquerade.
# Median of N (default 50) of each, wall time per invocation (bash $EPOCHREALTIME, no extra
# fork for timing), process start included. The two sides alternate round by round, so load
# from elsewhere on the machine hits both alike; one warm-up round is not counted.
# Needs: root, iproute2 (ip netns), containernetworking-plugins, a release hull-cni
# (cargo build --release -p hull-net --bin hull-cni).
set -euo pipefail
N=${N:-50}
HERE=$(cd "$(dirname "$0")/.." && pwd)
HULL_CNI=${HULL_CNI:-$HERE/target/release/hull-cni}
REF=${CNI_PLUGINS:-/usr/lib/cni}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 0; }
[ -x "$HULL_CNI" ] || { echo "missing $HULL_CNI (cargo build --release -p hull-net --bin hull-cni)"; exit 1; }
for p in bridge host-local portmap; do
  [ -x "$REF/$p" ] || { echo "SKIP: $REF/$p missing (apt-get install containernetworking-plugins)"; exit 0; }
done

TMP=$(mktemp -d /tmp/hull-bench-cni.XXXXXX)
SUBNET=10.246.0.0/24
FWD=$(cat /proc/sys/net/ipv4/ip_forward)
NAT_BEFORE=$(nft list tables 2>/dev/null | grep -c -x -e 'table ip nat' -e 'table ip6 nat' || true)
NS=hullbench$$
HBR=hullbh$$; RBR=hullbr$$
cleanup() {
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$HBR" 2>/dev/null || true
  ip link del "$RBR" 2>/dev/null || true
  # portmap leaves its top-level chains; remove them unless they were there before.
  if [ "$NAT_BEFORE" = 0 ]; then
    for ipt in iptables ip6tables; do
      $ipt -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT 2>/dev/null || true
      $ipt -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT 2>/dev/null || true
      $ipt -t nat -D POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ 2>/dev/null || true
      for c in CNI-HOSTPORT-DNAT CNI-HOSTPORT-MASQ CNI-HOSTPORT-SETMARK; do
        $ipt -t nat -F "$c" 2>/dev/null || true; $ipt -t nat -X "$c" 2>/dev/null || true
      done
    done
    nft delete table ip nat 2>/dev/null || true
    nft delete table ip6 nat 2>/dev/null || true
  fi
  # The reference bridge plugin turns forwarding on when isGateway; put it back.
  echo "$FWD" > /proc/sys/net/ipv4/ip_forward
  # hull-cni has no network removal: drop its subnet from hull's nftables set.
  nft delete element ip hull nets "{ $SUBNET }" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"
NSP=/run/netns/$NS
PORT=$((20000 + $$ % 20000))

cat > "$TMP/hull.json" <<JSON
{"cniVersion":"1.0.0","name":"hullbench","type":"hull-cni","bridge":"$HBR","isGateway":true,
 "ipMasq":false,"hairpinMode":true,"hullRoot":"$TMP/root",
 "ipam":{"subnet":"$SUBNET","routes":[{"dst":"0.0.0.0/0"}]},
 "runtimeConfig":{"portMappings":[{"hostPort":$PORT,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}]}}
JSON
cat > "$TMP/bridge.json" <<JSON
{"cniVersion":"1.0.0","name":"refbench","type":"bridge","bridge":"$RBR","isGateway":true,
 "ipMasq":false,"hairpinMode":true,
 "ipam":{"type":"host-local","routes":[{"dst":"0.0.0.0/0"}],"ranges":[[{"subnet":"10.247.0.0/24"}]],
         "dataDir":"$TMP/host-local"}}
JSON

run() { # plugin command config-file -> stdout
  CNI_COMMAND=$2 CNI_CONTAINERID=bench$$ CNI_NETNS=$NSP CNI_IFNAME=eth0 CNI_PATH=$REF "$1" < "$3"
}
portmap_conf() { # prevResult-json
  printf '{"cniVersion":"1.0.0","name":"refbench","type":"portmap","capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":%d,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}]},"prevResult":%s}' "$((PORT+1))" "$1"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
spread() { # file -> "p10..p90" in us, to show how steady the median is
  sort -n "$1" | awk '{a[NR]=$1} END {printf "%d..%d", a[int(NR*0.1)+1], a[int(NR*0.9)]}'
}

: > "$TMP/h_add"; : > "$TMP/h_del"; : > "$TMP/r_add"; : > "$TMP/r_del"
round() { # output-dir: one ADD+DEL of each side, interleaved; times appended to its files
  local d=$1 t0 t1 t2 res
  t0=${EPOCHREALTIME/./}; run "$HULL_CNI" ADD "$TMP/hull.json" > /dev/null; t1=${EPOCHREALTIME/./}
  run "$HULL_CNI" DEL "$TMP/hull.json" > /dev/null; t2=${EPOCHREALTIME/./}
  echo $((t1 - t0)) >> "$d/h_add"; echo $((t2 - t1)) >> "$d/h_del"

  t0=${EPOCHREALTIME/./}
  res=$(run "$REF/bridge" ADD "$TMP/bridge.json")
  portmap_conf "$res" > "$TMP/pm.json"
  run "$REF/portmap" ADD "$TMP/pm.json" > /dev/null
  t1=${EPOCHREALTIME/./}
  run "$REF/portmap" DEL "$TMP/pm.json" > /dev/null
  run "$REF/bridge" DEL "$TMP/bridge.json" > /dev/null
  t2=${EPOCHREALTIME/./}
  echo $((t1 - t0)) >> "$d/r_add"; echo $((t2 - t1)) >> "$d/r_del"
}
# Warm-up, not counted: both sides create their bridge, tables/chains and state files on
# first use, and the binaries come into the page cache.
mkdir "$TMP/warm"; round "$TMP/warm"
for i in $(seq "$N"); do round "$TMP"; done

ha=$(median < "$TMP/h_add"); hd=$(median < "$TMP/h_del")
ra=$(median < "$TMP/r_add"); rd=$(median < "$TMP/r_del")
printf '%-8s %14s %22s %8s\n' op "hull-cni (us)" "bridge+portmap (us)" ratio
printf '%-8s %14s %22s %7.1fx\n' ADD "$ha" "$ra" "$(echo "$ra / $ha" | bc -l)"
printf '%-8s %14s %22s\n' " p10-p90" "$(spread "$TMP/h_add")" "$(spread "$TMP/r_add")"
printf '%-8s %14s %22s %7.1fx\n' DEL "$hd" "$rd" "$(echo "$rd / $hd" | bc -l)"
printf '%-8s %14s %22s\n' " p10-p90" "$(spread "$TMP/h_del")" "$(spread "$TMP/r_del")"
echo "median of $N runs each (after one warm-up round); ratio = reference / hull (higher is better for hull)"
