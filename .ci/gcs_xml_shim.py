"""Test-only HTTP shim in front of fake-gcs-server (Python standard library only).

Usage: python3 gcs_xml_shim.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT

object_store's GCS client writes objects through the GCS XML API,
    PUT /{bucket}/{object}          (optional header x-goog-if-generation-match: N)
which fake-gcs-server does not implement. This shim turns such a PUT into the JSON-API upload
    POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name={object}[&ifGenerationMatch=N]
and answers like the XML API would (empty body, ETag and x-goog-generation headers).

fake-gcs-server ignores ifGenerationMatch on uploads, so the shim enforces the precondition
itself: it reads the object's current generation (0 when absent) and answers 412
PreconditionFailed, as GCS does, when it differs. The shim's PUTs are serialized, so this
check-then-write is atomic for writes that go through the shim (not against deletes or JSON-API
writes that bypass it); with real GCS the server does it.
Every other request (reads, lists, deletes, JSON-API calls, PUTs with a query string such as
multipart parts) is proxied unchanged. It listens on 127.0.0.1 only.
"""

import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Headers that belong to one hop and are not copied between the two connections.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
}

PRECONDITION_FAILED = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>PreconditionFailed</Code>"
    b"<Message>At least one of the pre-conditions you specified did not hold.</Message>"
    b"<Details>Precondition Failed</Details></Error>"
)

# Serializes the translated PUTs, so the generation check and the upload are one step.
WRITE_LOCK = threading.Lock()


class Shim(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = ("127.0.0.1", 4443)

    def log_message(self, fmt, *args):  # one line per request on stderr (the service log)
        sys.stderr.write("%s %s\n" % (self.command, self.path))

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def forward(self, method, path, body, headers):
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def generation(self, bucket, name):
        """The object's current generation as a string, "0" when absent, None without bucket."""
        status, _, data = self.forward(
            "GET",
            "/storage/v1/b/%s/o/%s"
            % (urllib.parse.quote(bucket, safe=""), urllib.parse.quote(name, safe="")),
            None,
            {},
        )
        if status == 200:
            return str(json.loads(data).get("generation", "0"))
        if status == 404:
            # Tell a missing object from a missing bucket.
            bstatus, _, _ = self.forward(
                "GET", "/storage/v1/b/%s" % urllib.parse.quote(bucket, safe=""), None, {}
            )
            return "0" if bstatus == 200 else None
        raise OSError("reading the generation of %s/%s: status %d" % (bucket, name, status))

    def reply(self, status, headers, body):
        self.send_response(status)
        length = None
        for name, value in headers:
            if name.lower() == "content-length":
                length = value
            elif name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        # A HEAD answer carries the upstream's length without a body.
        if self.command == "HEAD" and length is not None:
            self.send_header("Content-Length", length)
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def proxy(self):
        body = self.read_body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            self.reply(*self.forward(self.command, self.path, body, headers))
        except OSError as e:
            self.reply(502, [("Content-Type", "text/plain")], ("upstream: %s\n" % e).encode())

    do_GET = do_HEAD = do_POST = do_DELETE = do_PATCH = do_OPTIONS = proxy

    def do_PUT(self):
        url = urllib.parse.urlsplit(self.path)
        bucket, sep, obj = url.path.lstrip("/").partition("/")
        if url.query or not sep or not obj or bucket in ("storage", "upload"):
            return self.proxy()
        body = self.read_body()
        bucket, name = urllib.parse.unquote(bucket), urllib.parse.unquote(obj)
        query = {"uploadType": "media", "name": name}
        wanted = self.headers.get("x-goog-if-generation-match")
        if wanted is not None:
            query["ifGenerationMatch"] = wanted
        path = "/upload/storage/v1/b/%s/o?%s" % (
            urllib.parse.quote(bucket, safe=""),
            urllib.parse.urlencode(query),
        )
        headers = {"Content-Type": self.headers.get("Content-Type") or "application/octet-stream"}
        try:
            with WRITE_LOCK:
                current = None if wanted is None else self.generation(bucket, name)
                if wanted is None or current == wanted.strip():
                    status, up_headers, data = self.forward("POST", path, body, headers)
                elif current is None:
                    status, up_headers, data = 404, [("Content-Type", "text/plain")], b"no bucket\n"
                else:
                    status, up_headers = 412, [("Content-Type", "application/xml")]
                    data = PRECONDITION_FAILED
        except OSError as e:
            status, up_headers = 502, [("Content-Type", "text/plain")]
            data = ("upstream: %s\n" % e).encode()
        if status != 200:
            return self.reply(status, up_headers, data)
        meta = json.loads(data or b"{}")
        etag = meta.get("md5Hash") or meta.get("etag") or ""
        out = [("ETag", '"%s"' % etag)]
        if "generation" in meta:
            out.append(("x-goog-generation", str(meta["generation"])))
        if "metageneration" in meta:
            out.append(("x-goog-metageneration", str(meta["metageneration"])))
        self.reply(200, out, b"")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: gcs_xml_shim.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT")
    Shim.upstream = (sys.argv[2], int(sys.argv[3]))
    server = Server(("127.0.0.1", int(sys.argv[1])), Shim)
    server.serve_forever()


if __name__ == "__main__":
    main()
