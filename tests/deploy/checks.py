"""tests/deploy/checks.py — what the Python checks of tests/deploy share.

Each check prints one line, "ok   NAME" or "FAIL NAME: DETAIL", and
finish() prints the "N passed, N failed" line tests/run.sh counts and exits
non-zero when any check failed.

    from checks import check, finish, reader
    read = reader(root)
    check("the man page exists", bool(read("doc/lsmi.1")))
    finish()
"""
import os
import sys

_count = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    if ok:
        _count["passed"] += 1
        print(f"ok   {name}")
    else:
        _count["failed"] += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))


def reader(root):
    """A function that returns a file of the tree (a path below root)."""
    def read(path):
        with open(os.path.join(root, path), encoding="utf-8") as f:
            return f.read()
    return read


def finish():
    print(f"{_count['passed']} passed, {_count['failed']} failed")
    sys.exit(1 if _count["failed"] else 0)
