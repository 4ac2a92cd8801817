# shellcheck shell=bash
# A container runtime's CNI calls, in bash, for the demo: run each plugin of a .conflist with
# the CNI_* environment and its config on stdin (name, cniVersion and prevResult added), ADD in
# order, DEL in reverse order, exactly as the CNI spec says. Needs jq.

# cni_exec_list COMMAND CONFLIST CONTAINER_ID NETNS_PATH CNI_ARGS [CACHED_RESULT] -> last result
cni_exec_list() {
  local cmd=$1 conflist=$2 cid=$3 netns=$4 args=$5 cached=${6:-} name version n i idx conf type out
  name=$(jq -r .name "$conflist")
  version=$(jq -r .cniVersion "$conflist")
  n=$(jq '.plugins | length' "$conflist")
  local prev=$cached
  for ((i = 0; i < n; i++)); do
    idx=$i
    [ "$cmd" = DEL ] && idx=$((n - 1 - i))
    conf=$(jq -c --arg name "$name" --arg v "$version" ".plugins[$idx] + {name: \$name, cniVersion: \$v}" "$conflist")
    [ -n "$prev" ] && conf=$(jq -c --argjson p "$prev" '. + {prevResult: $p}' <<<"$conf")
    type=$(jq -r .type <<<"$conf")
    if ! out=$(CNI_COMMAND=$cmd CNI_CONTAINERID=$cid CNI_NETNS=$netns CNI_IFNAME=eth0 \
      CNI_ARGS=$args CNI_PATH=$CNI_PATH "$(cni_find "$type")" <<<"$conf"); then
      echo "CNI $cmd failed in plugin $type: $out" >&2
      return 1
    fi
    [ "$cmd" = ADD ] && prev=$out
  done
  [ "$cmd" = ADD ] && echo "$prev"
  return 0
}

cni_find() {
  local d
  IFS=: read -ra dirs <<<"$CNI_PATH"
  for d in "${dirs[@]}"; do [ -x "$d/$1" ] && { echo "$d/$1"; return; }; done
  echo "plugin $1 not found in $CNI_PATH" >&2
  return 1
}
