#!/usr/bin/env bash
# Opens `valise-desktop --demo` in a real X window (Xvfb, with Mesa's software OpenGL), drives
# it with the keyboard as a diplomat would, and takes screenshots: the inbox, a reading pane of
# each classification, compose with a refusal shown, the sent view and the directory. Fails if
# the window never appears or a screenshot is blank.
#
# Needs (Debian): xvfb libgl1-mesa-dri libegl1 imagemagick xdotool x11-utils.
# Usage: scripts/desktop-screenshots.sh [OUT_DIR]   (default docs/desktop)
set -euo pipefail

cd "$(dirname "$0")/.."
out="${1:-docs/desktop}"
mkdir -p "$out"
work="$(mktemp -d)"
display=":${VALISE_XVFB_DISPLAY:-97}"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "desktop-screenshots: $*" >&2; exit 1; }

for tool in Xvfb xdotool import identify; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install xvfb xdotool imagemagick)"
done

# The test profile: CI has just built every dependency with it for `cargo test`.
cargo build --quiet --profile test -p valise-desktop
binary="target/debug/valise-desktop"

Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp &
pids+=($!)
export DISPLAY="$display"
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
xdpyinfo >/dev/null 2>&1 || fail "Xvfb did not start on $display"

# Mesa's software renderer: no GPU here.
export LIBGL_ALWAYS_SOFTWARE=1
"$binary" --demo --keep "$work/demo" --downloads "$work/saved" >"$work/app.log" 2>&1 &
app=$!
pids+=($app)

window=""
for _ in $(seq 120); do
    kill -0 "$app" 2>/dev/null || { cat "$work/app.log" >&2; fail "valise-desktop exited before its window appeared"; }
    window="$(xdotool search --name '^Valise' 2>/dev/null | head -n1 || true)"
    [ -n "$window" ] && break
    sleep 0.5
done
[ -n "$window" ] || { cat "$work/app.log" >&2; fail "the window never appeared within 60 s"; }
echo "desktop-screenshots: window $window is up"
xdotool windowmove "$window" 0 0 windowsize "$window" 1280 800 || true
# Without a window manager the keyboard follows the pointer: keep it over the window.
xdotool mousemove 1000 600
sleep 3
xdotool windowfocus --sync "$window" || true

# shot NAME: saves the screen, and fails if the picture is blank (one colour, or nearly).
shot() {
    local file="$out/$1.png"
    sleep 1.5
    import -window root "$file"
    local colours
    colours="$(identify -format '%k' "$file")"
    [ "$colours" -ge 16 ] || fail "$file is blank ($colours colours)"
    echo "desktop-screenshots: $file ($colours colours)"
}
key() { xdotool key --clearmodifiers "$@"; sleep 0.4; }

# show SUBJECT: filters the inbox down to one cable and opens it (the banners then show its
# marking alone).
show() {
    key ctrl+f
    key ctrl+a
    xdotool type --delay 30 "$1"
    sleep 0.3
    key Escape
    key Home
}

key ctrl+1
key Home
shot inbox
show "Evacuation of non-essential"
shot reading-top-secret
show "Demarche on fisheries"
shot reading-secret
show "Visit of the trade delegation"
shot reading-confidential
show "Press summary"
shot reading-unclassified

# Forward the SECRET//NOFORN cable to a colleague cleared CONFIDENTIAL: refused before sealing.
show "Demarche on fisheries"
key ctrl+shift+f
sleep 1
xdotool type --delay 40 "carol@paris"
shot compose-refusal

key Escape
key ctrl+2
shot sent
key ctrl+4
shot directory
key ctrl+5
shot keys
echo "desktop-screenshots: done, in $out"
