"""Shared by the tests of the ringlm command's apps: the binary, a check
recorder and its summary, and a subprocess runner."""
import os
import subprocess

RINGLM = os.environ.get("RINGLM", "build/ringlm")
RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)), flush=True)
    return ok


def run(args, stdin=None):
    return subprocess.run([RINGLM] + args, input=stdin, capture_output=True, text=True)


def summary():
    p = sum(RESULTS)
    print("%d passed, %d failed" % (p, len(RESULTS) - p))
    return 0 if p == len(RESULTS) else 1
