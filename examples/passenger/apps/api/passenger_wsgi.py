"""A small WSGI app. Its answer is computed at import time, so only a real restart of the
app by Passenger changes what it serves. Dependencies are vendored in vendor/ because shared
hosting has no pip at run time."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "vendor"))

from greeting import greet  # noqa: E402  (vendored)

try:
    with open(os.path.join(HERE, "REVISION")) as f:
        REVISION = f.read().strip()
except OSError:
    REVISION = "unknown"

BODY = (greet("api") + " revision " + REVISION + "\n").encode()


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]
