#!/usr/bin/env python3
"""An HTTP proxy for fault-injection tests: forwards every request to an upstream server
(e.g. the S3 server from s3_server.py) unchanged, except that it can be told to answer
the next N requests itself with an error status.

Control endpoints (not forwarded):
  POST /__fault?count=N&status=503   fail the next N requests with that status
  GET  /__stats                      {"forwarded": F, "failed": X, "requests": R}

Prints {"endpoint": "http://127.0.0.1:PORT"} on stdout once listening; serves until stdin
closes. Usage: fault_proxy.py --upstream http://127.0.0.1:PORT
"""
import argparse
import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"fail": 0, "status": 503, "forwarded": 0, "failed": 0, "requests": 0}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None

    def log_message(self, *args):
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reply(self, status, body, ctype="application/xml", head=False):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _handle(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/__fault":
            q = urllib.parse.parse_qs(url.query)
            self._body()
            with LOCK:
                STATE["fail"] = int(q.get("count", ["1"])[0])
                STATE["status"] = int(q.get("status", ["503"])[0])
            return self._reply(200, b"{}", "application/json")
        if url.path == "/__stats":
            with LOCK:
                body = json.dumps({k: STATE[k] for k in ("forwarded", "failed", "requests")})
            return self._reply(200, body.encode(), "application/json")
        body = self._body()
        with LOCK:
            STATE["requests"] += 1
            inject = STATE["fail"] > 0
            if inject:
                STATE["fail"] -= 1
                STATE["failed"] += 1
                status = STATE["status"]
            else:
                STATE["forwarded"] += 1
        if inject:
            err = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
                   b"<Message>injected fault</Message></Error>")
            return self._reply(status, err, head=self.command == "HEAD")
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", resp.getheader("Content-Length") or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    args = ap.parse_args()
    Handler.upstream = urllib.parse.urlsplit(args.upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"endpoint": f"http://127.0.0.1:{server.server_address[1]}"}), flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
