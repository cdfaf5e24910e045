#!/bin/bash
# A systemd user manager of the test's own (tests/helpers/systemd.py drives it).
#   user_manager.sh CGROUP_PATH ROOT TARGET
# Moves this shell (and so everything it starts) into CGROUP_PATH in every hierarchy,
# refuses to go on unless /proc/self/cgroup shows it there, then starts journald and
# `systemd --user` in a private mount namespace. Prints "pids JOURNALD MANAGER" and
# "state STATE"; on a line from stdin, or at EOF (the test went away), stops both.
set -u
cgroup=$1 root=$2 target=$3

if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
  hierarchies=(/sys/fs/cgroup)
else
  hierarchies=(/sys/fs/cgroup/unified /sys/fs/cgroup/systemd)
fi
for h in "${hierarchies[@]}"; do
  mkdir -p "$h$cgroup" && echo $$ > "$h$cgroup/cgroup.procs" || { echo "error: cannot move into $h$cgroup"; exit 90; }
done
# A manager started in any other cgroup (the root above all) would take in every process of
# the machine: never exec it unless this shell is where it must be, in every hierarchy.
for h in "${hierarchies[@]}"; do
  case $h in
    */systemd) pattern="^[0-9]+:name=systemd:$cgroup\$" ;;
    *) pattern="^0::$cgroup\$" ;;
  esac
  grep -qE "$pattern" /proc/self/cgroup || { echo "error: not in $cgroup: $(tr '\n' ' ' < /proc/self/cgroup)"; exit 91; }
done

exec unshare --mount --propagation private /bin/bash -c '
set -u
root=$1 target=$2
mount -t tmpfs -o mode=755 tmpfs /run/systemd && mkdir /run/systemd/system &&
  mount -t tmpfs tmpfs /run/log || { echo "error: cannot mount tmpfs on /run/systemd, /run/log"; exit 92; }
if [ -d /var/log/journal ]; then
  mount -t tmpfs tmpfs /var/log/journal || { echo "error: cannot mount tmpfs on /var/log/journal"; exit 92; }
fi
# journald keeps to itself: no kernel log read or written, nothing sent to terminals.
printf "[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToKMsg=no\nForwardToConsole=no\nForwardToWall=no\n" \
  > /run/log/journald.conf
if [ -f /etc/systemd/journald.conf ]; then
  mount --bind /run/log/journald.conf /etc/systemd/journald.conf || { echo "error: cannot bind journald.conf"; exit 92; }
fi
export HOME=$root/home XDG_CONFIG_HOME=$root/config XDG_RUNTIME_DIR=$root/run XDG_DATA_HOME=$root/data
export XDG_STATE_HOME=$root/state XDG_CACHE_HOME=$root/cache
unset DBUS_SESSION_BUS_ADDRESS NOTIFY_SOCKET
SYSTEMD_LOG_TARGET=console /lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 & journald=$!
/lib/systemd/systemd --user --log-target=journal --unit="$target" </dev/null >/dev/null 2>&1 & manager=$!
echo "pids $journald $manager"
for _ in $(seq 200); do
  systemctl --user is-system-running >/dev/null 2>&1 && break
  kill -0 "$manager" 2>/dev/null || break
  sleep 0.05
done
echo "state $(systemctl --user is-system-running 2>&1)"
read -r _ || true
systemctl --user exit >/dev/null 2>&1
for _ in $(seq 100); do kill -0 "$manager" 2>/dev/null || break; sleep 0.05; done
# Guarded: an empty or low PID would signal a process group or the whole session.
if [ "$manager" -gt 1 ] 2>/dev/null && kill -0 "$manager" 2>/dev/null; then kill -KILL "$manager"; fi
if [ "$journald" -gt 1 ] 2>/dev/null; then kill -TERM "$journald" 2>/dev/null; fi
wait
echo "done"
' user_manager "$root" "$target"
