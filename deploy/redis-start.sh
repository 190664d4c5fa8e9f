#!/bin/sh
# compose.yaml's redis: starts redis-server with the password of the redis_password secret file.
# The password goes into a config file on the container's /tmp (a tmpfs, mode 0600, owned by the
# redis user), included with --include: never on redis-server's command line, which every process
# on the host can read (ps, /proc/PID/cmdline). The image's own entrypoint then owns /data to the
# redis user and drops to it (gosu), as without this script.
set -eu

secret=/run/secrets/redis_password
config=/tmp/redis-password.conf
if [ ! -s "$secret" ]; then
  echo "redis-start: $secret is missing or empty (docs/deployment.md, step 1)" >&2
  exit 1
fi
# One line; the newline an editor or `echo` leaves is not part of the password (as sdc reads it).
password=$(head -n 1 "$secret" | tr -d '\r')
case "$password" in
  *'"'* | *'\'*)
    echo "redis-start: $secret holds a quote or a backslash; use e.g. openssl rand -base64 32" >&2
    exit 1 ;;
esac
umask 077
printf 'requirepass "%s"\n' "$password" > "$config"
unset password
chown redis:redis "$config"
exec docker-entrypoint.sh redis-server --include "$config" --appendonly yes
