"""A stand-in for a browser's push service, for tests/e2e/push.rs.

It decrypts what it receives with an implementation independent of ours
(Mozilla's `http_ece`, RFC 8188/8291) and checks the VAPID signature with
`py_vapid` (RFC 8292), so a test fails if our encryption or signing drifts
from the standards, not merely from itself.

    GET  /new?mode=ok|gone|flaky   a fresh subscription (own key pair and
                                   auth secret): {"endpoint", "keys": {...}}
    POST /push/<id>                what a push service receives; answers 201,
                                   410 (mode gone), or 500 once then 201 (flaky)
    GET  /received                 every push so far, decrypted and checked

Prints {"port": N} on its first line once listening on 127.0.0.1.
"""

import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


LOCK = threading.Lock()
SUBSCRIPTIONS = {}  # id -> {"key", "auth", "mode", "hits"}
RECEIVED = []


def check_vapid(header, endpoint_origin):
    """RFC 8292 §3: `vapid t=<JWT>, k=<key>` (auth-params, optional spaces)."""
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "vapid":
        return {"ok": False, "why": "scheme %r" % scheme}
    parts = {}
    for p in params.split(","):
        k, _, v = p.strip().partition("=")
        parts[k] = v
    token, key = parts.get("t", ""), parts.get("k", "")
    signed, _, signature = token.rpartition(".")
    try:
        verified = Vapid02.from_raw_public(key.encode()).verify_token(
            validation_token=signed.encode(), verification_token=signature
        )
    except Exception as e:  # a malformed key or token is a failed check
        return {"ok": False, "why": "verify: %r" % e, "k": key}
    header_b64, _, claims_b64 = signed.partition(".")
    claims = json.loads(unb64url(claims_b64))
    jwt_header = json.loads(unb64url(header_b64))
    now = time.time()
    problems = []
    if not verified:
        problems.append("bad signature")
    if jwt_header.get("alg") != "ES256":
        problems.append("alg %r" % jwt_header.get("alg"))
    if claims.get("aud") != endpoint_origin:
        problems.append("aud %r, expected %r" % (claims.get("aud"), endpoint_origin))
    if not (now < claims.get("exp", 0) <= now + 24 * 3600 + 60):
        problems.append("exp %r not within 24 h" % claims.get("exp"))
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        problems.append("sub %r" % claims.get("sub"))
    return {"ok": not problems, "why": "; ".join(problems), "k": key, "claims": claims}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", ctype="application/json"):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/new":
            mode = parse_qs(url.query).get("mode", ["ok"])[0]
            key = ec.generate_private_key(ec.SECP256R1())
            auth = os.urandom(16)
            point = key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            sid = b64url(os.urandom(9))
            with LOCK:
                SUBSCRIPTIONS[sid] = {"key": key, "auth": auth, "mode": mode, "hits": 0}
            host = self.headers.get("host")
            sub = {
                "endpoint": "http://%s/push/%s" % (host, sid),
                "keys": {"p256dh": b64url(point), "auth": b64url(auth)},
            }
            return self.reply(200, json.dumps(sub).encode())
        if url.path == "/received":
            with LOCK:
                body = json.dumps(RECEIVED).encode()
            return self.reply(200, body)
        self.reply(404)

    def do_POST(self):
        url = urlparse(self.path)
        sid = url.path.rsplit("/", 1)[-1]
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        with LOCK:
            sub = SUBSCRIPTIONS.get(sid)
            if sub is None or not url.path.startswith("/push/"):
                return self.reply(404)
            sub["hits"] += 1
            hit = sub["hits"]
        record = {
            "subscription": sid,
            "attempt": hit,
            "ttl": self.headers.get("ttl"),
            "urgency": self.headers.get("urgency"),
            "topic": self.headers.get("topic"),
            "contentEncoding": self.headers.get("content-encoding"),
            "bodyBytes": len(body),
            "vapid": check_vapid(self.headers.get("authorization", ""), "http://%s" % self.headers.get("host")),
        }
        try:
            plain = http_ece.decrypt(body, private_key=sub["key"], auth_secret=sub["auth"], version="aes128gcm")
            record["payload"] = json.loads(plain)
        except Exception as e:
            record["decryptError"] = repr(e)
        if sub["mode"] == "gone":
            status = 410
        elif sub["mode"] == "flaky" and hit == 1:
            status = 500
        else:
            status = 201
        record["answered"] = status
        with LOCK:
            RECEIVED.append(record)
        self.reply(status)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
