#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Container entrypoint: optional one-time setup from the environment, then exec the command.
#   TC_GROUP="pair:node1,node2"   create the redundancy group in the shared database if missing
#   TC_SETTINGS="heartbeat_interval=0.5 heartbeat_timeout=3"   set when the group is created
#   TC_USERS="alice:secret bob:secret"   create these accounts if missing
# Both are idempotent, and safe when both nodes of a pair run them at once.
set -e
config=/etc/tcbroker/tcbroker.toml
if [ -n "${TC_GROUP:-}" ]; then
  name=${TC_GROUP%%:*}
  nodes=${TC_GROUP#*:}
  tries=0
  # The database may still be starting: retry for a minute.
  until tcctl --config "$config" group list --json >/tmp/groups.json 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { echo "entrypoint: database not reachable" >&2; exit 1; }
    sleep 1
  done
  if ! grep -q "\"$name\"" /tmp/groups.json; then
    if tcctl --config "$config" group add "$name" --nodes "$nodes" --ha on \
      --description "made by the container entrypoint"; then
      for setting in ${TC_SETTINGS:-}; do
        tcctl --config "$config" settings set "${setting%%=*}" "${setting#*=}"
      done
    fi
  fi
fi
for entry in ${TC_USERS:-}; do
  tcctl --config "$config" users add "${entry%%:*}" --password "${entry#*:}" --if-missing
done
exec "$@"
