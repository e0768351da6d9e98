#!/usr/bin/env python3
"""A docker-registry token server for tests: checks basic auth, returns RS256 JWTs signed
with openssl, keyed by the libtrust key id docker-registry derives from the root cert.
usage: token_server.py PORT KEY_PEM CERT_PEM USER PASSWORD SERVICE ISSUER"""
import base64, hashlib, json, os, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

port, key, cert, user, pw, service, issuer = sys.argv[1:8]
spki = subprocess.run(
    "openssl x509 -in '%s' -pubkey -noout | openssl pkey -pubin -outform DER" % cert,
    shell=True, check=True, capture_output=True).stdout
kid32 = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode().rstrip("=")
kid = ":".join(kid32[i:i + 4] for i in range(0, len(kid32), 4))
expected = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.headers.get("Authorization", "") != expected:
            self.send_response(401)
            self.end_headers()
            return
        access = []
        for scope in parse_qs(urlparse(self.path).query).get("scope", []):
            for one in scope.split(" "):
                typ, name, actions = one.split(":")
                access.append({"type": typ, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": issuer, "sub": user, "aud": service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        head = {"typ": "JWT", "alg": "RS256", "kid": kid}
        signing = b64(json.dumps(head).encode()) + "." + b64(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing.encode(),
                             check=True, capture_output=True).stdout
        token = signing + "." + b64(sig)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
