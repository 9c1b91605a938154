#!/bin/sh
# tests/deploy/entrypoint.sh — the image's entrypoint (deploy/docker-entrypoint.sh)
# outside a container: with no token configured, `lsmi serve` gets a generated
# token file (mode 0600, "TOKEN default", kept across starts, never logged);
# configured tokens, --tokens-file or another command leave everything alone;
# the command is exec'd with its arguments intact.
# Last line: "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
entry="$root/deploy/docker-entrypoint.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
. "$root/tests/tally.sh" # ok, bad, tally
# A stand-in `lsmi` on PATH that shows what it was started with.
mkdir -p "$tmp/bin"
cat >"$tmp/bin/lsmi" <<'SH'
#!/bin/sh
echo "pid=$$ args=$* tokens_file=${LSMI_TOKENS_FILE:-}"
SH
chmod +x "$tmp/bin/lsmi"
run() { env -u LSMI_TOKENS -u LSMI_TOKENS_FILE PATH="$tmp/bin:$PATH" LSMI_DATA_DIR="$tmp/data" "$@"; }

mkdir -p "$tmp/data"
out=$(run sh "$entry" lsmi serve --workers 1 2>"$tmp/err")
[ -s "$tmp/data/tokens" ] && ok "no token: a token file is generated" || bad "no token: a token file is generated"
mode=$(stat -c %a "$tmp/data/tokens" 2>/dev/null)
[ "$mode" = 600 ] && ok "token file is mode 0600" || bad "token file is mode 0600 (got $mode)"
grep -Eq '^[0-9a-f]{48} default$' "$tmp/data/tokens" && ok "token file holds 'TOKEN default'" || bad "token file holds 'TOKEN default'"
case $out in *"args=serve --workers 1 tokens_file=$tmp/data/tokens") ok "serve gets LSMI_TOKENS_FILE and its arguments" ;; *) bad "serve gets LSMI_TOKENS_FILE and its arguments: $out" ;; esac
token=$(cut -d' ' -f1 "$tmp/data/tokens")
grep -q "$token" "$tmp/err" && bad "the token is not logged" || ok "the token is not logged"
grep -q '"event":"tokens"' "$tmp/err" && ok "the generation is logged" || bad "the generation is logged"
run sh "$entry" lsmi serve >/dev/null 2>&1
[ "$(cut -d' ' -f1 "$tmp/data/tokens")" = "$token" ] && ok "a second start keeps the token" || bad "a second start keeps the token"

rm -f "$tmp/data/tokens"
out=$(run env LSMI_TOKENS=t=alice sh "$entry" lsmi serve 2>/dev/null)
[ ! -e "$tmp/data/tokens" ] && case $out in *"tokens_file=") true ;; *) false ;; esac \
  && ok "LSMI_TOKENS set: nothing generated" || bad "LSMI_TOKENS set: nothing generated ($out)"
out=$(run sh "$entry" lsmi serve --tokens-file /x 2>/dev/null)
[ ! -e "$tmp/data/tokens" ] && ok "--tokens-file given: nothing generated" || bad "--tokens-file given: nothing generated"
out=$(run sh "$entry" lsmi fit a.npz 2>/dev/null)
[ ! -e "$tmp/data/tokens" ] && case $out in *"args=fit a.npz tokens_file=") true ;; *) false ;; esac \
  && ok "another command runs as given" || bad "another command runs as given ($out)"
chmod 0555 "$tmp/data"
if [ "$(id -u)" -ne 0 ]; then
  run sh "$entry" lsmi serve >/dev/null 2>&1 && bad "unwritable data dir: exits non-zero" || ok "unwritable data dir: exits non-zero"
fi
chmod 0755 "$tmp/data"
# exec: the command replaces the script (same PID).
out=$(run sh -c 'echo "sh=$$"; exec sh "$0" lsmi fit' "$entry" 2>/dev/null)
shpid=$(echo "$out" | sed -n 's/^sh=//p')
case $out in *"pid=$shpid "*) ok "the command is exec'd (same PID)" ;; *) bad "the command is exec'd (same PID): $out" ;; esac

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
