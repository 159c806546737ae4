"""The receivers the bridge is measured against, each run as its own process.

python -m benchmarks.targets flask PORT            the vendor's stock receiver (replica)
python -m benchmarks.targets bottle PORT THREADS   bare bottle on waitress: parse, answer
python -m benchmarks.targets logged PORT THREADS FILE   the same, appending each body
"""

from __future__ import annotations

import json
import os
import sys
import threading

SUCCESS = {"status": 0, "message": "SUCCESS"}
PATHS = ("/RealTimeEvent", "/EventServer/api/SophonFogRelEvent")


def flask_app():
    """What the vendor ships: a Flask development server that parses and answers."""
    from flask import Flask, request

    app = Flask("stock_receiver")

    def receive():
        json.loads(request.get_data())
        return SUCCESS

    for path in PATHS:
        app.add_url_rule(path, path, receive, methods=["POST"])
    return app


def bottle_app(log_path: str | None = None):
    import bottle

    app = bottle.Bottle()
    bottle.BaseRequest.MEMFILE_MAX = 64 << 20
    lock = threading.Lock()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if log_path else None

    def receive():
        body = bottle.request.body.read()
        json.loads(body)
        if fd is not None:
            with lock:
                os.write(fd, len(body).to_bytes(4, "little") + body)
        bottle.response.content_type = "application/json"
        return json.dumps(SUCCESS)

    for path in PATHS:
        app.route(path, "POST", receive)
    return app


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    if kind == "flask":
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        flask_app().run("127.0.0.1", port, threaded=True)
        return
    from waitress import serve

    threads = int(argv[2])
    app = bottle_app(argv[3] if kind == "logged" else None)
    serve(
        app,
        host="127.0.0.1",
        port=port,
        threads=threads,
        max_request_body_size=64 << 20,
        _quiet=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
