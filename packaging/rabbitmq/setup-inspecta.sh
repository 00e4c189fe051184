#!/usr/bin/env bash
# Creates Inspecta's vhost, users, permissions and topic permissions on a RabbitMQ 3.10 node
# (any node of the cluster: they are cluster-wide). Reads one user a line, from the files
# named or stdin:
#
#   plant-a/line-2/cam1     a station: publishes its own topics, reads its own commands
#   site plant-a            a site broker's bridge (site-bridge.conf): all of its site
#   ingest ingest           inspecta fleet ingest: reads everything
#   reader plant-view       dashboards, historians: read everything
#   commander mes           reads everything, commands any station
#
# A new user gets a random password, printed once as "user<TAB>password" on stdout; an
# existing user keeps its own (rabbitmqctl change_password to set one). Permissions are set
# again each run, so the list can be run again after any change. '#' starts a comment.
#
# Client ids are bound to users, because the MQTT plugin names a session's queue after the
# client id and a client that may configure another's queue may delete its backlog. A station
# connects with its default client id, inspecta-<site>-<line>-<station>; any other user <name>
# with inspecta-<name>-<tag>, <tag> without '-' (inspecta-ingest-1, inspecta-plant-a-bridge).
#
# Environment: VHOST (inspecta, = mqtt.vhost in rabbitmq.conf), PREFIX (inspecta),
# RABBITMQCTL (rabbitmqctl).
set -euo pipefail

VHOST=${VHOST:-inspecta}
PREFIX=${PREFIX:-inspecta}
CTL=${RABBITMQCTL:-rabbitmqctl}

# rabbitmqctl reads its stdin, which holds the list when no file is named.
ctl() { "$CTL" -q "$@" </dev/null; }
die() { echo "setup-inspecta: $*" >&2; exit 1; }
# Names go into regexes and queue names as they are, and MQTT's '.' becomes '/' in a routing
# key, so plain names only: letters, digits, '_' and '-' (none of them special in a regex).
plain() { [[ $1 =~ ^[A-Za-z0-9_-]+$ ]] || die "'$1' in line '$2': use only letters, digits, _ and -"; }

for f in "$@"; do [[ -r $f ]] || die "cannot read $f"; done
if (($#)); then exec 3< <(cat -- "$@"); else exec 3<&0 0</dev/null; fi
[[ $PREFIX =~ ^[A-Za-z0-9_-]+$ ]] || die "PREFIX '$PREFIX' is not a plain name"
P=$PREFIX
# Nothing matches '^$' but the empty routing key, which MQTT cannot publish to.
NONE='^$'
ALL_READ="^$P(-bridge)?\\."

# The whole list is checked before anything changes. Each user: name, the client ids it may
# use (as a queue name regex), topic write regex, topic read regex.
users=()
while IFS= read -r -u 3 line || [[ -n $line ]]; do
  line=${line%%#*}
  read -r -a words <<<"$line" || true
  ((${#words[@]})) || continue
  if ((${#words[@]} == 1)) && [[ ${words[0]} == */*/* ]]; then
    IFS=/ read -r site ln station extra <<<"${words[0]}"
    [[ -z ${extra:-} ]] || die "line '$line': a station is site/line/station"
    plain "$site" "$line"; plain "$ln" "$line"; plain "$station" "$line"
    key="$P\\.$site\\.$ln\\.$station"
    users+=("${words[0]}" "$P-$site-$ln-$station"
      "^$key\\.(verdict|review|alarm|kpi|status|rollout|command\\.reply)\$" "^$key\\.command\$")
    continue
  fi
  ((${#words[@]} == 2)) || die "line '$line': expected site/line/station or '<role> <name>'"
  role=${words[0]} n=${words[1]}
  plain "$n" "$line"
  case $role in
    site) users+=("$n" "$P-$n-[^-]+" "^($P\\.$n\\..+|$P-bridge\\.$n\\.state)\$" "^$P\\.$n\\.[^.]+\\.[^.]+\\.command\$") ;;
    ingest | reader) users+=("$n" "$P-$n-[^-]+" "$NONE" "$ALL_READ") ;;
    commander) users+=("$n" "$P-$n-[^-]+" "^$P\\.[^.]+\\.[^.]+\\.[^.]+\\.command\$" "$ALL_READ") ;;
    *) die "line '$line': unknown role '$role' (site, ingest, reader, commander)" ;;
  esac
done
((${#users[@]})) || die "no users in the list"

vhosts=$("$CTL" -s list_vhosts </dev/null)
grep -qxF -- "$VHOST" <<<"$vhosts" || ctl add_vhost "$VHOST"
existing=$("$CTL" -s list_users </dev/null | cut -f1)
for ((i = 0; i < ${#users[@]}; i += 4)); do
  user=${users[i]} queue="mqtt-subscription-${users[i + 1]}qos[01]"
  if ! grep -qxF -- "$user" <<<"$existing"; then
    password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    # On stdin, not the command line, where ps would show it.
    "$CTL" -q add_user "$user" <<<"$password" >/dev/null
    printf '%s\t%s\n' "$user" "$password"
  fi
  # configure: declare and delete its own session queues; write: publish to amq.topic and
  # bind its queues; read: bind from amq.topic and consume its queues. The topic permissions
  # then say which routing keys (MQTT topics, '/' as '.') it may publish to and bind.
  ctl set_permissions -p "$VHOST" "$user" "^$queue\$" "^(amq\\.topic|$queue)\$" "^(amq\\.topic|$queue)\$" >/dev/null
  ctl set_topic_permissions -p "$VHOST" "$user" amq.topic "${users[i + 2]}" "${users[i + 3]}" >/dev/null
done
