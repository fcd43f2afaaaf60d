"""Helpers for the server tests: a tiny random checkpoint, a real `ringlm
serve` on loopback (any free port, killed at the end even on failure), and
small HTTP clients from the standard library."""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time

RINGLM = os.environ.get("RINGLM", "build/ringlm")
TMP = os.environ.get("RL_TEST_TMP", "/tmp/rl_test_server")
HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data"))

RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)[:2000]), flush=True)
    return ok


def run_checked(f, *args):
    """Runs one test function; an exception is a failed check (with its
    traceback), so the remaining functions still run. Prints the time."""
    t = time.time()
    try:
        f(*args)
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        check(f.__name__ + " raised", False, repr(e))
    print("     (%s: %.1f s)" % (f.__name__, time.time() - t), flush=True)


def summary():
    p = sum(RESULTS)
    f = len(RESULTS) - p
    print("%d passed, %d failed" % (p, f), flush=True)
    return 1 if f else 0


def make_model(name="tiny", ring_template=False):
    os.makedirs(TMP, exist_ok=True)
    d = os.path.join(TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    r = subprocess.run([RINGLM, "mkmodel", "--preset", "tiny", "--byte-tokenizer", "-o", d, "--seed", "7"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if ring_template:
        ring = json.load(open(os.path.join(SHARED, "chat_templates", "ring.json")))
        p = os.path.join(d, "tokenizer_config.json")
        cfg = json.load(open(p))
        cfg["chat_template"] = ring["chat_template"]
        json.dump(cfg, open(p, "w"))
    return d


class Server:
    def __init__(self, model, *args, ready_timeout=60):
        self.log_path = os.path.join(TMP, "server-%d-%d.log" % (os.getpid(), int(time.time() * 1000) % 100000))
        self.log = open(self.log_path, "w+")
        self.p = subprocess.Popen([RINGLM, "serve", "-m", model, "--port", "0", "-t", "2"] + list(args),
                                  stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        t0 = time.time()
        while time.time() - t0 < ready_timeout and self.port is None:
            if self.p.poll() is not None:
                break
            with open(self.log_path) as f:
                for line in f:
                    if "listening on http://" in line:
                        self.port = int(line.rsplit(":", 1)[1])
            time.sleep(0.05)
        if self.port is None:
            self.kill()
            raise RuntimeError("server did not start: " + open(self.log_path).read())
        while time.time() - t0 < ready_timeout:
            st, _ = self.get("/health")
            if st == 200:
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("server never became healthy: " + open(self.log_path).read())

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, raw=None, headers=None, timeout=60):
        c = self.conn(timeout)
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            h = {"Content-Type": "application/json"}
            h.update(headers or {})
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read().decode("utf-8", "replace")
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text
        finally:
            c.close()

    def get(self, path):
        try:
            return self.request("GET", path, timeout=10)
        except OSError as e:
            return -1, str(e)

    def post(self, path, body, timeout=120):
        return self.request("POST", path, body, timeout=timeout)

    def stream(self, path, body, timeout=120):
        """Returns (status, list of decoded events, saw_done)."""
        c = self.conn(timeout)
        try:
            c.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
            r = c.getresponse()
            if r.status != 200:
                return r.status, [json.loads(r.read())], False
            events, done = [], False
            for line in r:
                line = line.decode("utf-8").rstrip("\n")
                if not line.startswith("data: "):
                    continue
                payload = line[6:]
                if payload == "[DONE]":
                    done = True
                    break
                events.append(json.loads(payload))
            return r.status, events, done
        finally:
            c.close()

    def metrics(self):
        st, text = self.get("/metrics")
        out = {}
        if st != 200:
            return out
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
        return out

    def metrics_idle(self, timeout=10):
        """Metrics once no slot is busy and nothing waits: a response reaches
        the client before the scheduler has released its slot and refreshed
        its gauges, so a read right after it can see the request running."""
        end = time.time() + timeout
        while True:
            m = self.metrics()
            if (m.get("ringlm_slots_busy") == 0 and m.get("ringlm_queue_depth") == 0) or time.time() > end:
                return m
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                return None
        return self.p.returncode

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def output(self):
        with open(self.log_path) as f:
            return f.read()
