#!/bin/bash
# tests/layout.sh — the rooms of the tree keep to their boundaries.
#
#  - what each folder includes: common/ only itself; core/ itself and
#    common/, and none of zlib, jansson, libuv, SQLite, libmicrohttpd; io/
#    itself, common/ and core's public header; server/ and cli/ the public
#    headers of core and io (never their internals), common/, and (cli)
#    server's headers;
#  - liblsmi.a links alone: a C program on the public API, linked with
#    -lm -lpthread -ldl and nothing else, fits a small dataset;
#  - the public headers compile as C++ (g++ -Wall -Wextra -Werror), and a
#    C++ program linked with liblsmi.a runs;
#  - each library exports exactly what its public header marks LSMI_API:
#    every other global symbol of its objects is hidden.
# Needs the libraries of $LSMI_BUILD (default build). Last line:
# "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$root" && realpath "${LSMI_BUILD:-build}")
cd "$root" || exit 1
. "$root/tests/tally.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# quoted_includes DIR: "file header" per #include "..." line of DIR's sources.
quoted_includes() {
  grep -H -o '^#include "[^"]*"' "$1"/*.c "$1"/*.h 2>/dev/null |
    sed 's/:#include "\(.*\)"/ \1/'
}
# allowed HEADER DIRS...: the header exists in one of DIRS (by name).
in_dirs() {
  local h=$1 d
  shift
  for d in "$@"; do [ -f "$d/$h" ] && return 0; done
  return 1
}
# check_room ROOM "OWN_DIRS" "PUBLIC_HEADERS": every quoted include of ROOM
# is one of its own dirs' headers or a named public header.
check_room() {
  local room=$1 own=$2 public=$3 bad_list="" file h
  while read -r file h; do
    # shellcheck disable=SC2086
    in_dirs "$h" $own && continue
    case " $public " in *" $h "*) continue ;; esac
    bad_list="$bad_list $file:$h"
  done < <(quoted_includes "$room")
  [ -z "$bad_list" ] && ok "$room/ includes only what it may" \
    || bad "$room/ includes what it may not:$bad_list"
}
check_room common "common" ""
check_room core "core common" ""
check_room io "io common" "lsmi.h"
check_room server "server common" "lsmi.h lsmi_io.h"
check_room cli "cli server common" "lsmi.h lsmi_io.h"

libs=$(grep -h -o -E '^#include <(zlib|jansson|uv|sqlite3|microhttpd)\.h>' core/*.[ch] common/*.[ch] | sort -u | tr '\n' ' ')
[ -z "$libs" ] && ok "core/ and common/ include no zlib, jansson, libuv, SQLite or libmicrohttpd" \
  || bad "core/ or common/ include $libs"

# The library alone, from C.
cat >"$tmp/alone.c" <<'EOF'
#include <stdio.h>
#include "lsmi.h"
int main(void) {
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err;
  if (lsmi_synth(LSMI_SYNTH_SYNERGY, 300, 1, &ds, &err) != LSMI_OK)
    return 1;
  lsmi_params_t p;
  lsmi_params_default(&p);
  p.epochs_discriminator = 2;
  p.epochs_entropy = 2;
  lsmi_result_t *res = NULL;
  int st = lsmi_fit(ds, &p, NULL, &res, &err);
  if (st == LSMI_OK)
    printf("n=%zu S=%g\n", res->val.n, res->val_summary.S);
  lsmi_result_destroy(res);
  lsmi_dataset_destroy(ds);
  return st == LSMI_OK ? 0 : 1;
}
EOF
if cc -std=c11 -Wall -Wextra -Werror -iquote core -o "$tmp/alone" "$tmp/alone.c" \
     "$build/liblsmi.a" -lm -lpthread -ldl >"$tmp/alone.log" 2>&1 &&
   "$tmp/alone" >>"$tmp/alone.log" 2>&1; then
  ok "liblsmi.a links alone (-lm -lpthread -ldl) and fits: $(tail -n 1 "$tmp/alone.log")"
else
  bad "liblsmi.a links alone"
  tail -n 10 "$tmp/alone.log"
fi

# The public headers from C++.
cp "$tmp/alone.c" "$tmp/alone.cc"
sed -i 's/#include "lsmi.h"/#include "lsmi.h"\n#include "lsmi_io.h"/' "$tmp/alone.cc"
if command -v g++ >/dev/null 2>&1; then
  if g++ -std=c++11 -Wall -Wextra -Werror -pedantic -iquote core -iquote io -o "$tmp/alone-cxx" \
       "$tmp/alone.cc" "$build/liblsmi.a" -lm -lpthread -ldl >"$tmp/cxx.log" 2>&1 &&
     "$tmp/alone-cxx" >>"$tmp/cxx.log" 2>&1; then
    ok "lsmi.h and lsmi_io.h compile as C++11, and a C++ program runs on liblsmi.a"
  else
    bad "the public headers compile as C++"
    tail -n 10 "$tmp/cxx.log"
  fi
else
  bad "g++ is not installed (deploy/install-deps.sh --test installs it)"
fi

# Exports: the global functions and objects an archive's members define
# with default visibility, against the LSMI_API names of its header.
exported() {
  readelf -sW "$1" 2>/dev/null |
    awk '$5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" && ($4 == "FUNC" || $4 == "OBJECT") {print $8}' |
    sort -u
}
declared() {
  # The name that follows LSMI_API and its return type, up to the "(".
  grep -v '^#' "$1" | tr '\n' ' ' | grep -o 'LSMI_API [^;(]*(' | sed 's/($//; s/.*[ *]//' | sort -u
}
for pair in "liblsmi.a core/lsmi.h" "liblsmi_io.a io/lsmi_io.h"; do
  read -r lib header <<<"$pair"
  exported "$build/$lib" >"$tmp/exp"
  declared "$header" >"$tmp/decl"
  extra=$(comm -23 "$tmp/exp" "$tmp/decl" | tr '\n' ' ')
  missing=$(comm -13 "$tmp/exp" "$tmp/decl" | tr '\n' ' ')
  n=$(wc -l <"$tmp/decl")
  if [ -s "$tmp/exp" ] && [ -z "$extra" ] && [ -z "$missing" ]; then
    ok "$lib exports exactly the $n LSMI_API names of $header"
  else
    bad "$lib exports what $header does not declare: [$extra]; declared but not exported: [$missing]"
  fi
done

tally
