#!/bin/bash
# Usage: remount_probe.sh UNIT MOUNTPOINT SIGNAL CONSUMER
# Sends SIGNAL to UNIT's gcsfuse process, then waits until UNIT runs a new process whose mount is
# there exactly once and answers, and CONSUMER runs a new process. Prints the result as JSON.
set -euo pipefail
unit=$1 point=$2 signal=$3 consumer=$4
main_pid() { systemctl show --property MainPID --value "$1"; }
mounted_once() { [ "$(awk -v p="$point" '$5 == p' /proc/self/mountinfo | wc -l)" = 1 ]; }
old=$(main_pid "$unit")
old_consumer=$(main_pid "$consumer")
start=$(date +%s%N)
kill "-$signal" "$old"
remount_ms=-1 consumer_ms=-1
for _ in $(seq 1 300); do
  now=$(date +%s%N)
  new=$(main_pid "$unit")
  if [ "$remount_ms" = -1 ] && [ "$(systemctl is-active "$unit")" = active ] && [ "$new" != "$old" ] \
     && [ "$new" != 0 ] && mounted_once && test -f "$point/hello.txt"; then
    remount_ms=$(( (now - start) / 1000000 ))
  fi
  new_consumer=$(main_pid "$consumer")
  if [ "$consumer_ms" = -1 ] && [ "$new_consumer" != "$old_consumer" ] && [ "$new_consumer" != 0 ]; then
    consumer_ms=$(( (now - start) / 1000000 ))
  fi
  if [ "$remount_ms" != -1 ] && [ "$consumer_ms" != -1 ]; then
    break
  fi
  sleep 0.1
done
printf '{"old_pid": %s, "new_pid": %s, "remount_ms": %s, "consumer_restart_ms": %s, "consumer_state": "%s"}\n' \
  "$old" "$(main_pid "$unit")" "$remount_ms" "$consumer_ms" "$(systemctl is-active "$consumer")"
