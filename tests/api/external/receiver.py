#!/usr/bin/env python3
"""A real external provisioner for the tests: an HTTP server that verifies drover's
signature, then (in a thread, as a job would) creates or drops the tenant's role and
database with psql, writes the password where the reference points, and calls back.

Usage: receiver.py DIR. DIR holds `key` (the HMAC key), `modes` (one per line, consumed
one per provisioning request; the last one stays), and it gets `port` (where this
listens), `requests.log` and `callbacks.log` (JSON lines). Environment: ADMIN_URL (a
superuser URL of the cluster), PSQL, SECRETS_DIR, DB_HOST, DB_PORT.

Modes: succeed | flaky-succeed (503 the first time a delivery id is seen) |
fail-retryable | fail | silent (never calls back) | wait (calls back once DIR/go exists).
"""
import hashlib, hmac, json, os, subprocess, sys, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIR = sys.argv[1]
LOCK = threading.Lock()
SEEN = set()


def path(name):
    return os.path.join(DIR, name)


def log(name, entry):
    with LOCK, open(path(name), "a") as f:
        f.write(json.dumps(entry) + "\n")


def next_mode():
    with LOCK:
        modes = [m for m in open(path("modes")).read().split("\n") if m.strip()]
        if len(modes) > 1:
            open(path("modes"), "w").write("\n".join(modes[1:]) + "\n")
        return modes[0].strip()


def verified(headers, body):
    key = open(path("key")).read().strip().encode()
    ts = headers.get("X-Drover-Timestamp", "")
    expected = "sha256=" + hmac.new(key, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get("X-Drover-Signature", ""))


def psql(sql):
    subprocess.run([os.environ["PSQL"], os.environ["ADMIN_URL"], "-v", "ON_ERROR_STOP=1",
                    "-q", "-c", sql], check=True, capture_output=True)


def call_back(request, report):
    cb = request["callback"]
    req = urllib.request.Request(cb["url"], data=json.dumps(report).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + cb["token"],
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, answer = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, answer = e.code, e.read().decode()
    log("callbacks.log", {"delivery_id": request["delivery_id"], "status": status,
                          "answer": answer})


def provision(request, mode):
    p = request["payload"]
    if mode == "wait":
        while not os.path.exists(path("go")):
            time.sleep(0.05)
    if mode in ("fail-retryable", "fail"):
        call_back(request, {"status": "failed", "error": {
            "message": "quota exceeded in the test cloud", "retryable": mode == "fail-retryable"}})
        return
    role, db = p["db_user"], p["db_name"]
    password = hashlib.sha256(os.urandom(16)).hexdigest()
    psql("DO $$ BEGIN CREATE ROLE drover_password_auth NOLOGIN; "
         "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    psql(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}' IN ROLE drover_password_auth")
    psql(f"CREATE DATABASE \"{db}\" OWNER \"{role}\"")
    ref = p["db_secret_ref"]
    assert ref.startswith("file:"), ref
    target = os.path.join(os.environ["SECRETS_DIR"], ref[len("file:"):])
    os.makedirs(os.path.dirname(target), exist_ok=True)
    open(target, "w").write(password + "\n")
    call_back(request, {"status": "succeeded", "db_host": os.environ["DB_HOST"],
                        "db_port": int(os.environ["DB_PORT"]), "db_name": db,
                        "db_user": role, "db_secret_ref": ref})


def deprovision(request):
    p = request["payload"]
    psql(f"DROP DATABASE IF EXISTS \"{p['db_name']}\" WITH (FORCE)")
    psql(f"DROP ROLE IF EXISTS \"{p['db_user']}\"")
    call_back(request, {"status": "succeeded"})


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ok = verified(self.headers, body)
        request = json.loads(body) if ok else {}
        delivery = self.headers.get("X-Drover-Delivery", "")
        log("requests.log", {"event": self.headers.get("X-Drover-Event"), "delivery_id": delivery,
                             "verified": ok, "body": request})
        if not ok:
            self.send_response(401)
            self.end_headers()
            return
        with LOCK:
            first = delivery not in SEEN
            SEEN.add(delivery)
        if not first:
            # At least once: a delivery seen before was already acted on.
            self.send_response(202)
            self.end_headers()
            return
        if request["type"] == "tenant.deprovisioning_requested":
            threading.Thread(target=deprovision, args=(request,)).start()
        else:
            mode = next_mode()
            if mode == "flaky-succeed":
                # Answer 503 once; the retry (same delivery id) is acted on as `succeed`.
                with LOCK:
                    SEEN.discard(delivery)
                    modes = open(path("modes")).read()
                    open(path("modes"), "w").write("succeed\n" + modes)
                self.send_response(503)
                self.end_headers()
                return
            if mode != "silent":
                threading.Thread(target=provision, args=(request, mode)).start()
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
open(path("port.tmp"), "w").write(str(server.server_address[1]))
os.rename(path("port.tmp"), path("port"))
server.serve_forever()
