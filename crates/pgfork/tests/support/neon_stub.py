"""A stand-in for Neon's API that answers with the example responses of Neon's
published OpenAPI document (what Neon documents it sends), for contract tests of
pgfork's client. Usage: neon_stub.py EXAMPLES.json PORT KEY

GET/PATCH/DELETE on a documented path answer its example (path parameters matched by
template); GET /projects/{p}/connection_uri answers a URI built from the query (Neon
documents its shape, not an example). A request without `Authorization: Bearer KEY`
gets Neon's 401. Every request is logged to stdout as `METHOD PATH`.
"""
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

examples = json.load(open(sys.argv[1]))
port = int(sys.argv[2])
key = sys.argv[3]
routes = []
for k, v in examples.items():
    method, template = k.split(" ", 1)
    pattern = "^/api/v2" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
    routes.append((method, re.compile(pattern), template, v))
# Most specific first: static segments beat parameters.
routes.sort(key=lambda r: r[2].count("{"))


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        url = urlparse(self.path)
        print(f"{method} {url.path}", flush=True)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.headers.get("Authorization") != f"Bearer {key}":
            return self.answer(401, {"code": "", "message": "authorization failed"})
        if method == "GET" and re.match(r"^/api/v2/projects/[^/]+/connection_uri$", url.path):
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            role = q.get("role_name", "neondb_owner")
            db = q.get("database_name", "neondb")
            return self.answer(200, {"uri": f"postgresql://{role}:secret@ep-example.neon.tech/{db}?sslmode=require"})
        for m, pattern, _, example in routes:
            if m == method and pattern.match(url.path):
                return self.answer(200, example)
        return self.answer(404, {"code": "", "message": "not found"})

    def do_GET(self):
        self.handle_any("GET")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def do_POST(self):
        self.handle_any("POST")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
