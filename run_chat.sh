#!/usr/bin/env bash
# Start the chat server and three clients, each in its own terminal.
#
#   ./run_chat.sh [PORT]        (default 9999; works from any directory)
#
# Where tmux exists: one tmux session ("chat", or $CHAT_SESSION) with four panes, the server and three
# clients. Run from a terminal it attaches to the session; run without one (a script, CI) it leaves the session
# detached and prints how to attach. Without tmux it opens four terminal-emulator windows if it finds one,
# else it prints the commands to run by hand. Clients start only once the server has printed its
# "listening on HOST:PORT" line. In tmux it then checks that the server and the three clients run (each
# client shows its name prompt); if one died, it says which and shows its last lines, ends the session and
# exits 1. Environment: PYTHON (default python3), CHAT_SESSION (default chat).
set -euo pipefail

usage="usage: run_chat.sh [PORT]   (default 9999)"
prog="run_chat.sh"
PYTHON="${PYTHON:-python3}"
SESSION="${CHAT_SESSION:-chat}"
HOST="localhost"
READY_TIMEOUT=20 # seconds for the server to print its listening line (a cold start on a loaded machine)
CLIENT_TIMEOUT=20 # seconds for each client to start, connect and show its name prompt
NAME_PROMPT="username:"

case "${1:-}" in
    -h | --help)
        echo "$usage"
        exit 0
        ;;
esac
if (($# > 1)); then
    echo "$prog: too many arguments; $usage" >&2
    exit 2
fi
PORT="${1:-9999}"
if ! [[ $PORT =~ ^[0-9]{1,5}$ ]] || ((10#$PORT > 65535)); then
    echo "$prog: not a port number: '$PORT'; $usage" >&2
    exit 2
fi
PORT=$((10#$PORT))

# Run from the repository, wherever the script was called from: `python -m chat...` finds the package here.
here="${BASH_SOURCE[0]%/*}"
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
cd "$here"

manual_commands() {
    echo "Start it by hand instead, each command in its own terminal, from $(pwd):"
    echo "  $PYTHON -m chat.server --port $PORT"
    echo "  $PYTHON -m chat.client $HOST $PORT      (once per client)"
}

# Where to open the four terminals: tmux, else a terminal emulator if a display is there to show it.
term=""
if ! command -v tmux >/dev/null 2>&1 && [[ -n ${DISPLAY:-}${WAYLAND_DISPLAY:-} ]]; then
    for candidate in x-terminal-emulator gnome-terminal konsole xterm; do
        if command -v "$candidate" >/dev/null 2>&1; then
            term="$candidate"
            break
        fi
    done
fi
if [[ -z $term ]] && ! command -v tmux >/dev/null 2>&1; then
    echo "$prog: neither tmux nor a terminal emulator (x-terminal-emulator, gnome-terminal, konsole, xterm)" \
        "with a display was found." >&2
    manual_commands >&2
    exit 1
fi

# What each terminal's bash runs once its program (server or client) has ended: a last line with the
# program's exit status, then, while this script is still checking the panes, a wait, so that the terminal
# stays open with everything the program printed until this script has read it. A pane that closed at once
# could lose its last lines (tmux may close a pane before it has read all its output) and its status (tmux
# may learn it a moment after the pane died). The wait ends as soon as the check is over (this script removes
# the "checking" file) or this script is gone, even killed (looked up by its PID). Uses $status, $checking and
# $launcher, set by the runner that includes it.
# shellcheck disable=SC2016 # expanded by the pane's own bash
linger='
printf "\n[exited with status %s]\n" "$status"
while [[ -e $checking ]] && kill -0 "$launcher" 2>/dev/null; do
    sleep 0.1 # the pace of the wait; the deadline of the check bounds it
done
exit "$status"'
EXITED_RE='\[exited with status ([0-9]+)\]' # linger's line, at the start of a line

# The server's terminal runs this: it shows the server's output, and passes the first line (the listening
# line, or the error that stopped the server) to the launcher through a fifo; then linger, with the server's
# own exit status. $1 python, $2 port, $3 fifo, $4 checking file, $5 launcher PID.
# stderr joins stdout so that a failure to start reaches the launcher too.
# shellcheck disable=SC2016 # expanded by the server pane's own bash
server_runner='
checking=$4 launcher=$5
"$1" -m chat.server --port "$2" 2>&1 | {
    first="the server exited before it was ready"
    while IFS= read -r line; do
        printf "%s\n" "$line"
        case $line in "listening on "*) first=$line; break ;; esac
        first=$line
    done
    printf "%s\n" "$first" >"$3"
    trap "" INT # Ctrl+C is for the server: keep showing what it prints while it shuts down
    exec cat
}
status=${PIPESTATUS[0]}'"$linger"

# Each client's terminal runs this: the client, then linger. $1 python, $2 host, $3 port, $4 checking file,
# $5 launcher PID.
# shellcheck disable=SC2016 # expanded by the client pane's own bash
client_runner='
checking=$4 launcher=$5
"$1" -m chat.client "$2" "$3"
status=$?'"$linger"

# Where the server's first line arrives. Opened read-write, so that opening never blocks and a read can time
# out even if the server's terminal never starts.
tmp="$(mktemp -d "${TMPDIR:-/tmp}/run_chat.XXXXXX")"
cleanup() {
    rm -rf "$tmp"
    exec 3>&-
}
trap cleanup EXIT
mkfifo "$tmp/ready"
exec 3<>"$tmp/ready"
checking="$tmp/checking" # exists while this script checks the panes (see linger)
: >"$checking"

# Reads the server's first line; prints the port clients must use, or fails with the server's message.
wait_for_server() {
    local line=""
    if ! IFS= read -r -t "$READY_TIMEOUT" -u 3 line; then
        echo "$prog: the server did not print its listening line within ${READY_TIMEOUT} s" >&2
        return 1
    fi
    case $line in
        "listening on "*) echo "${line##*:}" ;;
        *)
            echo "$prog: the server did not start: $line" >&2
            return 1
            ;;
    esac
}

# Says why a pane failed: its title, exit status and last lines (its terminal waits for this, see linger; and
# remain-on-exit keeps a pane whose bash itself was killed). Sets check_panes' no_module when the lines show a
# missing module, so that the virtual environment hint is printed once for all panes.
report_pane() { # $1 pane id, $2 what happened
    local title last
    title="$(tmux display-message -p -t "$1" '#{pane_title}')"
    echo "$prog: $title $2; its last lines:" >&2
    last="$(tmux capture-pane -p -J -t "$1" | grep -v -e '^Pane is dead' -e '^[[:space:]]*$' -E -e "^$EXITED_RE\$" |
        tail -n 8)"
    printf '%s\n' "${last:-(nothing)}" | sed 's/^/    /' >&2
    [[ $last == *ModuleNotFoundError* ]] && no_module=1
    return 0
}

# Waits, at most CLIENT_TIMEOUT seconds, until every client shows its name prompt (it runs and reached the
# server) while the server still runs. Fails as soon as a program has ended, saying which (every one found
# ended in that round) and why. A program's end shows as linger's last line in its pane. A dead pane means its
# bash itself was killed: tmux then gives an exit status or a signal, maybe a moment after the pane died (the
# next round reads it). A poll of the panes' state: tmux has no event for "this pane printed that".
check_panes() { # $1 the server's pane id
    local deadline=$((SECONDS + CLIENT_TIMEOUT)) pane dead status sig waiting screen ended no_module=0
    while :; do
        waiting=""
        ended=0
        # '|' between the fields: tmux leaves the status or the signal of a dead pane empty.
        while IFS='|' read -r pane dead status sig; do
            if [[ $dead == 1 ]]; then
                if [[ -n $status ]]; then
                    report_pane "$pane" "exited (status $status)"
                elif [[ -n $sig ]]; then
                    report_pane "$pane" "was killed (signal $sig)"
                elif ((SECONDS >= deadline)); then
                    report_pane "$pane" "exited (status unknown)"
                else
                    waiting="$pane"
                    continue
                fi
                ended=1
                continue
            fi
            screen="$(tmux capture-pane -p -J -t "$pane")"
            if [[ $'\n'$screen =~ $'\n'$EXITED_RE ]]; then
                report_pane "$pane" "exited (status ${BASH_REMATCH[1]})"
                ended=1
            elif [[ $pane != "$1" && $screen != *"$NAME_PROMPT"* ]]; then
                waiting="$pane"
            fi
        done < <(tmux list-panes -t "$1" -F '#{pane_id}|#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}')
        if ((ended)); then
            if ((no_module)); then
                echo "$prog: is the virtual environment active? Every terminal needs it: . .venv/bin/activate" >&2
            fi
            return 1
        fi
        [[ -z $waiting ]] && return 0
        if ((SECONDS >= deadline)); then
            report_pane "$waiting" "runs but did not show its '$NAME_PROMPT' prompt within ${CLIENT_TIMEOUT} s"
            return 1
        fi
        sleep 0.1 # the pace of the poll; the deadline above bounds it
    done
}

if [[ -z $term ]]; then
    if tmux has-session -t "=$SESSION" 2>/dev/null; then
        echo "$prog: a tmux session named '$SESSION' already exists; attach with 'tmux attach -t $SESSION'" \
            "or end it with 'tmux kill-session -t $SESSION'" >&2
        exit 1
    fi
    # remain-on-exit keeps a pane that died, with its last lines and exit status, until check_panes has
    # looked at it; set in the same tmux command as the session, before any pane can die.
    server_pane="$(tmux new-session -d -P -F '#{pane_id}' -s "$SESSION" -n chat -c "$(pwd)" \
        bash -c "$server_runner" server "$PYTHON" "$PORT" "$tmp/ready" "$checking" $$ 3>&- \; \
        set-option -w remain-on-exit on)"
    tmux select-pane -t "$server_pane" -T server
    if ! port="$(wait_for_server)"; then
        tmux kill-session -t "=$SESSION" 2>/dev/null || true
        exit 1
    fi
    pane="$server_pane"
    first_client=""
    for n in 1 2 3; do # each after the last, so that the tiles read server, client 1, client 2, client 3
        pane="$(tmux split-window -d -P -F '#{pane_id}' -t "$pane" -c "$(pwd)" \
            bash -c "$client_runner" client "$PYTHON" "$HOST" "$port" "$checking" $$ 3>&-)"
        tmux select-pane -t "$pane" -T "client $n"
        tmux select-layout -t "$server_pane" tiled >/dev/null
        first_client="${first_client:-$pane}"
    done
    if ! check_panes "$server_pane"; then
        tmux kill-session -t "=$SESSION" 2>/dev/null || true
        exit 1
    fi
    rm -f "$checking"                                                   # the check is over: see linger
    tmux set-option -w -t "$server_pane" remain-on-exit off >/dev/null # from now on a pane that ends closes
    tmux set-option -w -t "$server_pane" pane-border-status top >/dev/null
    tmux set-option -w -t "$server_pane" pane-border-format ' #{pane_title} ' >/dev/null
    tmux set-option -t "$server_pane" mouse on >/dev/null # a session option: click a pane to type in it
    tmux select-pane -t "$first_client"
    if [[ -t 0 && -t 1 ]]; then
        cleanup # exec skips the EXIT trap
        if [[ -n ${TMUX:-} ]]; then
            exec tmux switch-client -t "=$SESSION"
        fi
        exec tmux attach-session -t "=$SESSION"
    fi
    echo "chat started on port $port in the tmux session '$SESSION' (server and three clients)."
    echo "Attach with: tmux attach -t $SESSION     (Ctrl+C in the server pane stops everything)"
    exit 0
fi

open_terminal() { # command and arguments, run in a new window
    case $term in
        gnome-terminal) gnome-terminal -- "$@" >/dev/null 2>&1 3>&- & ;;
        *) "$term" -e "$@" >/dev/null 2>&1 3>&- & ;;
    esac
}
open_terminal bash -c "$server_runner" server "$PYTHON" "$PORT" "$tmp/ready" "$checking" $$
port="$(wait_for_server)" || exit 1
for _ in 1 2 3; do
    open_terminal "$PYTHON" -m chat.client "$HOST" "$port"
done
echo "chat started on port $port: the server and three clients, each in a $term window."
