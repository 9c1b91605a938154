"""bench/yardstick.py — where the drivers find the PyTorch yardstick and the
data maker, and which Python runs them.

bench/bench.py and bench/compare_reference.py use only the standard library
and may run under any python3; bench/make_data.py (numpy) and
bench/torch_ref.py (torch and numpy) run under $LSMI_REF_PYTHON, else
Debian's /usr/bin/python3 (where python3-torch installs), else the driver's
own interpreter. require() checks that interpreter once, before any work, so
that a missing package is one line, not a traceback from a child process.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_DATA = os.path.join(HERE, 'make_data.py')
TORCH_REF = os.path.join(HERE, 'torch_ref.py')


def python():
    """The interpreter for make_data.py and torch_ref.py."""
    env = os.environ.get('LSMI_REF_PYTHON')
    if env:
        return env
    return '/usr/bin/python3' if os.access('/usr/bin/python3', os.X_OK) else sys.executable


# Prints the names of the modules in argv that do not import.
_PROBE = ('import importlib, sys\n'
          'for m in sys.argv[1:]:\n'
          '    try: importlib.import_module(m)\n'
          '    except Exception: print(m)\n')


def require(py, modules, prog):
    """Exits with one line saying what to install when py cannot import
    every one of modules (e.g. ('numpy', 'torch'))."""
    try:
        res = subprocess.run([py, '-c', _PROBE, *modules], capture_output=True, text=True)
        missing = res.stdout.split() if res.returncode == 0 else list(modules)
    except OSError:
        missing = list(modules)
    if missing:
        sys.exit(f'{prog}: {py} has no {" and no ".join(missing)}: apt-get install python3-torch '
                 'python3-numpy, or set LSMI_REF_PYTHON to a Python that has them')
