#!/usr/bin/env python3
"""tests/deploy/docs.py — the documentation agrees with the code and with itself.

The code is the source: `lsmi serve --help` prints the daemon's option table
from server/config.c, and `lsmi fit --help` the estimator's parameters from
core/params.c. This checks, against them:

  - doc/configuration.md's table and the SERVE OPTIONS of doc/lsmi.1 list
    exactly the flags, environment variables and defaults of
    `lsmi serve --help`: none missing, none extra, no default different;
  - every flag of `lsmi fit --help` is in doc/cli.md and in doc/lsmi.1, and
    doc/cli.md's tables give the defaults `lsmi fit --help` gives and no flag
    it does not know;
  - doc/lsmi.1 documents every LSMI_* variable the code reads, and names no
    other;

and, of README.md, doc/*.md and deploy/README.md:

  - every relative link points to a file of the repository (and its #anchor
    to a heading of that file);
  - every path of the tree named in `code` (core/..., tests/..., ...) exists,
    and so does every *.md the C sources' comments name;
  - README.md stays a front door: at most 200 lines, linking every doc/*.md.

Usage: docs.py REPO_ROOT LSMI_BINARY
Prints one line per check and "N passed, N failed" last.
"""
import glob
import os
import re
import subprocess
import sys

from checks import check, finish, reader

ROOT = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else ".")
BIN = sys.argv[2] if len(sys.argv) > 2 else None
read = reader(ROOT)


def run(*args):
    """stdout of `lsmi ARGS` (and whether it exited 0)."""
    try:
        r = subprocess.run([BIN, *args], capture_output=True, text=True,
                           timeout=20)
        return r.stdout, r.returncode == 0
    except (OSError, subprocess.TimeoutExpired, TypeError) as e:
        return str(e), False


def norm(value):
    """A default as a comparable string: '(none)' and 'none' alike, sizes
    with a K/M/G/T suffix in bytes, numbers as floats."""
    v = value.strip().strip("`").strip()
    if v.strip("()") == "none":
        return "none"
    m = re.fullmatch(r"(\d+)([KMGT])", v)
    if m:
        v = str(int(m.group(1)) << (10 * ("KMGT".index(m.group(2)) + 1)))
    try:
        return repr(float(v))
    except ValueError:
        return v


def compare(what, found, want):
    """found, want: {key: default}. Missing, extra and different entries."""
    missing = sorted(k for k in want if k not in found)
    extra = sorted(k for k in found if k not in want)
    wrong = sorted(f"{k}: {found[k]} (code: {want[k]})" for k in want
                   if k in found and norm(found[k]) != norm(want[k]))
    check(f"{what}: nothing missing", not missing, ", ".join(missing))
    check(f"{what}: nothing extra", not extra, ", ".join(extra))
    check(f"{what}: the same defaults", not wrong, "; ".join(wrong))


# --------------------------------------------------------------------------
# lsmi serve --help: "  --flag   LSMI_VAR   default" (flag "(none)" for a
# variable without one), keyed "--flag LSMI_VAR".
serve_help, ok = run("serve", "--help")
check("`lsmi serve --help` exits 0", ok, serve_help[-300:])
serve = {f"{f} {e}": d for f, e, d in re.findall(
    r"^  (--[a-z][a-z0-9-]*|\(none\))\s+(LSMI_[A-Z0-9_]+)\s+(\S+)\s*$",
    serve_help, re.M)}
serve = {k.replace("(none)", "-"): d for k, d in serve.items()}
check("`lsmi serve --help` lists options", len(serve) >= 10, str(len(serve)))

# doc/configuration.md: the table | `--flag` | `LSMI_X` | default | meaning |
conf = read("doc/configuration.md")
table = re.search(r"^\| flag \| environment variable \| default \|.*?\n"
                  r"((?:\|.*\n)+)", conf, re.M)
conf_rows = {}
for line in (table.group(1) if table else "").splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) < 3 or set(cells[0]) <= set("-"):
        continue
    flag = cells[0].strip("`")
    flag = "-" if flag == "(none)" else flag
    conf_rows[f"{flag} {cells[1].strip('`')}"] = cells[2]
check("doc/configuration.md has the configuration table", bool(conf_rows))
compare("doc/configuration.md against `lsmi serve --help`", conf_rows, serve)

# doc/lsmi.1, SERVE OPTIONS: .TP entries ".BI --flag ARG" or ".B LSMI_X",
# then "(LSMI_X, default D)" or "(no flag, default D)".
man = read("doc/lsmi.1")
man_text = man.replace("\\-", "-")
section = re.search(r"^\.SH SERVE OPTIONS\n(.*?)^\.SH ", man_text, re.M | re.S)
man_rows = {}
for entry in (section.group(1) if section else "").split(".TP\n")[1:]:
    head = re.match(r"\.BI? (--[a-z][a-z0-9-]*|LSMI_[A-Z0-9_]+)", entry)
    default = re.search(r"default ([^)\n]+)\)", entry)
    env = re.search(r"\b(LSMI_[A-Z0-9_]+)\b", entry)
    if not head:
        continue
    flag = head.group(1) if head.group(1).startswith("--") else "-"
    man_rows[f"{flag} {env.group(1) if env else '?'}"] = (
        default.group(1) if default else "?")
check("doc/lsmi.1 has a SERVE OPTIONS section", bool(man_rows))
compare("doc/lsmi.1 SERVE OPTIONS against `lsmi serve --help`", man_rows,
        serve)

# --------------------------------------------------------------------------
# lsmi fit --help: "  --flag   help [default]" and "  --out PATH  ...".
fit_help, ok = run("fit", "--help")
check("`lsmi fit --help` exits 0", ok, fit_help[-300:])
fit_flags = set(re.findall(r"^\s+(--[a-z][a-z0-9-]*)", fit_help, re.M))
fit_defaults = dict(re.findall(r"^  (--[a-z][a-z0-9-]*)\s.*\[([^\]]+)\]$",
                               fit_help, re.M))
check("`lsmi fit --help` lists parameters with defaults",
      len(fit_defaults) >= 10, str(len(fit_defaults)))
cli = read("doc/cli.md")
missing = sorted(f for f in fit_flags if f"`{f}`" not in cli)
check("doc/cli.md documents every flag of `lsmi fit --help`", not missing,
      "missing: " + ", ".join(missing))
fit_part = cli.split("## `lsmi synth`")[0]
cli_rows = {}
for line in fit_part.splitlines():
    m = re.match(r"\| `(--[a-z][a-z0-9-]*)`[^|]*\| ([^|]*)\|", line)
    if m:
        cli_rows[m.group(1)] = m.group(2).strip()
extra = sorted(f for f in cli_rows if f not in fit_flags | {"--help"})
check("doc/cli.md's `lsmi fit` tables name no flag `lsmi fit --help` lacks",
      not extra, ", ".join(extra))
compare("doc/cli.md's parameter table against `lsmi fit --help`",
        {f: d for f, d in cli_rows.items() if f in fit_defaults},
        fit_defaults)
fit_section = re.search(r"^\.SH FIT OPTIONS\n(.*?)^\.SH ", man_text,
                        re.M | re.S)
missing = sorted(f for f in fit_flags
                 if not fit_section or f not in fit_section.group(1))
check("doc/lsmi.1 FIT OPTIONS documents every flag of `lsmi fit --help`",
      not missing, "missing: " + ", ".join(missing))

# --------------------------------------------------------------------------
# The variables the code reads: those of the help, and getenv("LSMI_...").
sources = ""
for path in sorted(p for room in ("cli", "server", "core", "io", "common")
                   for p in glob.glob(os.path.join(ROOT, room, "*.[ch]"))):
    with open(path, encoding="utf-8", errors="replace") as f:
        sources += f.read()
read_vars = set(re.findall(r"\b(LSMI_[A-Z][A-Z0-9_]*)\b", serve_help)) | set(
    re.findall(r'getenv\(\s*"(LSMI_[A-Z0-9_]+)"', sources))
literal_vars = set(re.findall(r'"(LSMI_[A-Z0-9_]+)"', sources)) | read_vars
man_vars = set(re.findall(r"\b(LSMI_[A-Z][A-Z0-9_]*)\b", man_text))
check("the code reads LSMI_KERNELS and LSMI_LISTEN",
      {"LSMI_KERNELS", "LSMI_LISTEN"} <= read_vars)
missing = sorted(read_vars - man_vars)
check("doc/lsmi.1 documents every LSMI_* variable the code reads",
      not missing, "missing: " + ", ".join(missing))
unknown = sorted(man_vars - literal_vars)
check("doc/lsmi.1 names only LSMI_* variables the code reads", not unknown,
      "unknown: " + ", ".join(unknown))

# --------------------------------------------------------------------------
# Links and paths of the Markdown pages.
pages = ["README.md", "deploy/README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "doc", "*.md")))


def slugs(text):
    """GitHub's anchors of a Markdown text's headings."""
    seen, out = {}, set()
    for h in re.findall(r"^#{1,6} +(.+?) *$", strip_code(text), re.M):
        s = re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def strip_code(text):
    """The text without its fenced blocks (no links or headings there)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


bad_links, bad_paths, outside = [], [], []
for page in pages:
    text = read(page)
    prose = strip_code(text)
    here = os.path.dirname(os.path.join(ROOT, page))
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        full = os.path.realpath(os.path.join(here, path)) if path else \
            os.path.join(ROOT, page)
        if not (full + os.sep).startswith(ROOT + os.sep):
            outside.append(f"{page}: {target}")
        elif not os.path.exists(full):
            bad_links.append(f"{page}: {target}")
        elif anchor and full.endswith(".md"):
            with open(full, encoding="utf-8") as f:
                if anchor not in slugs(f.read()):
                    bad_links.append(f"{page}: {target} (no such heading)")
    # `room/...` in code spans: the tree's own paths (build output aside).
    for span in re.findall(r"`([^`\n]+)`", text):
        for word in span.split():
            m = re.fullmatch(r"((?:core|io|common|cli|server|bench|tests|"
                             r"deploy|doc|proto)/[A-Za-z0-9_./-]*[A-Za-z0-9_/])"
                             r"[,.:;)]*", word)
            if m and not os.path.exists(os.path.join(ROOT, m.group(1))):
                bad_paths.append(f"{page}: {m.group(1)}")
    if re.search(r"\.\./\.\.|\.\./" + "shared", text):
        outside.append(f"{page}: names a directory beside the repository")
check("every relative link of the pages names a file and heading that exist",
      not bad_links, "; ".join(bad_links))
check("every path of the tree the pages name in `code` exists",
      not bad_paths, "; ".join(sorted(set(bad_paths))))
check("no page points outside the repository", not outside,
      "; ".join(outside))
man_paths = sorted(p for p in set(re.findall(r"\b(?:doc|deploy)/[\w.-]+\.md",
                                             man_text))
                   if not os.path.exists(os.path.join(ROOT, p)))
check("the paths doc/lsmi.1 names exist", not man_paths, ", ".join(man_paths))
# The sources' comments send readers to documents: those must exist too.
cited = sorted(p for p in set(re.findall(r"(?<![\w/.-])([\w/.-]+\.md)\b",
                                         sources))
               if not os.path.exists(os.path.join(ROOT, p)))
check("every document the sources' comments name exists", not cited,
      ", ".join(cited))

readme = read("README.md")
lines = readme.count("\n")
check(f"README.md is a front door: at most 200 lines ({lines})", lines <= 200)
unlinked = sorted(p for p in pages if p.startswith("doc/")
                  and f"]({p})" not in readme)
check("README.md links every doc/*.md", not unlinked, ", ".join(unlinked))

finish()
