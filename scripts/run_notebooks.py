#!/usr/bin/env python3
"""Executes every notebook in notebooks/ headless (nbclient) and fails on the first error."""
import pathlib
import sys

import nbformat
from nbclient import NotebookClient

root = pathlib.Path(__file__).resolve().parent.parent
failed = False
for path in sorted((root / "notebooks").glob("*.ipynb")):
    nb = nbformat.read(path, as_version=4)
    print(f"executing {path.relative_to(root)} ...", flush=True)
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    except Exception as err:  # report the failing cell and keep the exit status
        print(f"{path.name}: {err}", file=sys.stderr)
        failed = True
sys.exit(1 if failed else 0)
