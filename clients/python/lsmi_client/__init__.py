"""lsmi_client — a Python client of the lsmi service (`lsmi serve`).

    from lsmi_client import Client
    rows = Client("http://127.0.0.1:8080", token).fit(x1, x2, y)

See clients/python/README.md.
"""
from .client import Client, JobError, ProblemError

__all__ = ["Client", "JobError", "ProblemError"]
__version__ = "0.1.0"
