"""ringlm serve under bad input and abuse: the bad-input table (status +
OpenAI error object, the server keeps serving), huge bodies, a full queue
(429), clients that vanish mid-generation (cancelled), hundreds of
connections and slow clients, graceful shutdown under load."""
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serverlib import Server, check, make_model, run_checked, summary  # noqa: E402

T0 = time.time()
MSG = [{"role": "user", "content": "hi"}]


def raw_http(port, data, timeout=10):
    """Sends raw bytes, returns (status, body text)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while True:
            try:
                k = s.recv(65536)
            except socket.timeout:
                break
            if not k:
                break
            buf += k
            if b"\r\n\r\n" in buf:
                head, _, body = buf.partition(b"\r\n\r\n")
                cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(body) >= int(cl[0].split(b":")[1]):
                    break
        status = int(buf.split(b" ", 2)[1]) if buf.startswith(b"HTTP/") else -1
        return status, buf.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")
    finally:
        s.close()


def post_raw(port, path, body, ctype="application/json"):
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (path, ctype, len(body))).encode()
    return raw_http(port, head + body)


def is_error(body, status):
    try:
        e = json.loads(body)["error"]
        return isinstance(e["message"], str) and e["message"] and e["code"] == status and "type" in e and "param" in e
    except (ValueError, KeyError, TypeError):
        return False


def test_bad_inputs(s):
    C, P = "/v1/chat/completions", "/v1/completions"
    long_prompt = "z" * 300  # the server runs with -c 256
    table = [
        ("malformed JSON", C, b'{"messages": [', 400),
        ("not an object", C, b'[1, 2]', 400),
        ("empty body", C, b'', 400),
        ("invalid UTF-8 in the body", C, b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', 400),
        ("messages missing", C, json.dumps({"max_tokens": 3}).encode(), 400),
        ("messages not an array", C, json.dumps({"messages": "hi"}).encode(), 400),
        ("messages empty", C, json.dumps({"messages": []}).encode(), 400),
        ("message without role", C, json.dumps({"messages": [{"content": "x"}]}).encode(), 400),
        ("content of a wrong type", C, json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(), 400),
        ("image part", C, json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}).encode(), 400),
        ("max_tokens a string", C, json.dumps({"messages": MSG, "max_tokens": "x"}).encode(), 400),
        ("max_tokens 0", C, json.dumps({"messages": MSG, "max_tokens": 0}).encode(), 400),
        ("max_tokens a float", C, json.dumps({"messages": MSG, "max_tokens": 2.5}).encode(), 400),
        ("temperature a string", C, json.dumps({"messages": MSG, "temperature": "hot"}).encode(), 400),
        ("top_p > 1", C, json.dumps({"messages": MSG, "top_p": 1.5}).encode(), 400),
        ("top_k a float", C, json.dumps({"messages": MSG, "top_k": 0.5}).encode(), 400),
        ("seed a float", C, json.dumps({"messages": MSG, "seed": 1.5}).encode(), 400),
        ("stream a string", C, json.dumps({"messages": MSG, "stream": "yes"}).encode(), 400),
        ("stream_options a list", C, json.dumps({"messages": MSG, "stream_options": [1]}).encode(), 400),
        ("stop a number", C, json.dumps({"messages": MSG, "stop": 5}).encode(), 400),
        ("stop list with a number", C, json.dumps({"messages": MSG, "stop": ["a", 1]}).encode(), 400),
        ("n = 2", C, json.dumps({"messages": MSG, "n": 2}).encode(), 400),
        ("logprobs an int (chat)", C, json.dumps({"messages": MSG, "logprobs": 3}).encode(), 400),
        ("top_logprobs 50", C, json.dumps({"messages": MSG, "logprobs": True, "top_logprobs": 50}).encode(), 400),
        ("top_logprobs without logprobs", C, json.dumps({"messages": MSG, "top_logprobs": 2}).encode(), 400),
        ("presence_penalty 5", C, json.dumps({"messages": MSG, "presence_penalty": 5}).encode(), 400),
        ("tools not an array", C, json.dumps({"messages": MSG, "tools": {}}).encode(), 400),
        ("prompt missing", P, json.dumps({"max_tokens": 3}).encode(), 400),
        ("prompt a number", P, json.dumps({"prompt": 5}).encode(), 400),
        ("prompt ids out of vocabulary", P, json.dumps({"prompt": [1, 99999]}).encode(), 400),
        ("prompt ids negative", P, json.dumps({"prompt": [1, -2]}).encode(), 400),
        ("prompt empty", P, json.dumps({"prompt": ""}).encode(), 400),
        ("prompt longer than the context", P, json.dumps({"prompt": long_prompt}).encode(), 400),
        ("logprobs 30 (completions)", P, json.dumps({"prompt": "a", "logprobs": 30}).encode(), 400),
        ("tokenize without content", "/tokenize", b'{}', 400),
        ("detokenize with strings", "/detokenize", b'{"tokens": ["a"]}', 400),
        ("unknown endpoint", "/v1/nothing", b'{}', 404),
    ]
    for name, path, body, want in table:
        st, text = post_raw(s.port, path, body)
        check("bad input: %s -> %d" % (name, want), st == want and is_error(text, want), (st, text[:300]))
    st, text = raw_http(s.port, b"GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check("GET on a POST endpoint -> 405", st == 405 and is_error(text, 405), (st, text))
    # unknown fields are ignored
    st, r = s.post("/v1/chat/completions", {"messages": MSG, "max_tokens": 2, "frobnicate": {"x": 1}, "user": "u"})
    check("unknown fields are ignored", st == 200, r)
    # huge bodies: declared (Content-Length) and actually sent
    big = b'{"prompt": "' + b"a" * (2 << 20) + b'"}'
    st, text = post_raw(s.port, "/v1/completions", big)
    check("body over --max-body -> 413", st == 413 and is_error(text, 413), (st, text[:200]))
    # chunked body over the limit
    chunk = b"a" * 65536
    data = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    data += b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    st, text = raw_http(s.port, data)
    check("chunked body over --max-body -> 413", st == 413, (st, text[:200]))
    st, r = s.post("/v1/completions", {"prompt": "still alive?", "max_tokens": 3})
    check("the server keeps serving after the bad inputs", st == 200 and s.get("/health")[0] == 200, r)
    m = s.metrics()
    check("bad requests are counted", m.get('ringlm_requests_total{outcome="bad_request"}', 0) >= 30, m)


def test_connections(s, n=300):
    socks, t = [], time.time()
    try:
        for i in range(n):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            if i % 3 == 1:  # slow client: half a request line
                c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro")
            elif i % 3 == 2:
                c.sendall(b"GET /heal")
            socks.append(c)
        st, r = s.post("/v1/completions", {"prompt": "with %d open connections" % n, "max_tokens": 4})
        st2, h = s.get("/health")
        check("%d open connections (a third slow, a third half-sent): requests still served" % n,
              st == 200 and st2 == 200, (st, r, st2))
    finally:
        for c in socks:
            c.close()
    # many short requests from many threads
    errs, ok = [], [0]
    lock = threading.Lock()

    def hammer():
        for _ in range(10):
            try:
                st, _ = s.get("/health")
                st2, _ = s.post("/tokenize", {"content": "abc"})
                with lock:
                    ok[0] += st == 200 and st2 == 200
            except OSError as e:
                errs.append(repr(e))
    th = [threading.Thread(target=hammer) for _ in range(50)]
    [x.start() for x in th]
    [x.join(60) for x in th]
    check("50 threads x 10 rounds of /health + /tokenize", ok[0] == 500 and not errs, (ok, errs[:3]))
    print("     (connections: %.1f s)" % (time.time() - t))


def test_queue_and_cancel(model):
    s = Server(model, "--parallel", "1", "--queue", "2", "-c", "4096")
    try:
        body = {"prompt": "long one", "max_tokens": 400, "ignore_eos": True, "seed": 1}
        res = []
        lock = threading.Lock()

        def one():
            try:
                st, r = s.post("/v1/completions", body)
            except OSError as e:
                st, r = -1, repr(e)
            with lock:
                res.append((st, r))
        th = [threading.Thread(target=one) for _ in range(8)]
        for x in th:
            x.start()
            time.sleep(0.02)
        for x in th:
            x.join(120)
        st = sorted(r[0] for r in res)
        n429 = sum(1 for x in res if x[0] == 429 and x[1]["error"]["type"] == "rate_limit_error")
        check("queue full -> 429 with an error object (1 slot, queue 2, 8 clients)",
              n429 >= 1 and st.count(200) >= 3 and st.count(200) + n429 == 8, st)
        # a streaming client that vanishes: the request is cancelled and the slot freed
        m0 = s.metrics()
        c = s.conn(30)
        c.request("POST", "/v1/completions", body=json.dumps(dict(body, max_tokens=3000, stream=True)),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.fp.readline()
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        # a non-streaming client that vanishes
        k = socket.create_connection(("127.0.0.1", s.port))
        b = json.dumps(dict(body, max_tokens=3000)).encode()
        k.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b))
        time.sleep(0.3)
        k.close()
        t = time.time()
        st, r = s.post("/v1/completions", {"prompt": "after", "max_tokens": 3}, timeout=60)
        waited = time.time() - t
        m1 = s.metrics()
        canc = m1.get('ringlm_requests_total{outcome="cancelled"}', 0) - m0.get('ringlm_requests_total{outcome="cancelled"}', 0)
        check("vanished clients are cancelled (2), the slot serves the next request at once", st == 200 and canc == 2
              and waited < 20, (st, canc, waited))
    finally:
        s.kill()


def test_shutdown_under_load(model):
    s = Server(model, "--parallel", "4", "--shutdown-grace", "1", "-c", "8192")
    results = []
    lock = threading.Lock()

    def client(i):
        try:
            if i % 2:
                st, ev, done = s.stream("/v1/completions", {"prompt": "load %d" % i, "max_tokens": 5000,
                                                            "ignore_eos": True, "stream": True}, timeout=60)
                out = ("stream", st, done)
            else:
                st, r = s.post("/v1/completions", {"prompt": "load %d" % i, "max_tokens": 5000 if i % 4 else 4,
                                                   "ignore_eos": True}, timeout=60)
                out = ("post", st)
        except (OSError, ValueError) as e:
            out = ("closed", repr(e))
        with lock:
            results.append(out)
    th = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    [x.start() for x in th]
    time.sleep(1.5)
    t = time.time()
    rc = s.stop(signal.SIGTERM, timeout=30)
    took = time.time() - t
    [x.join(30) for x in th]
    alive = [x for x in th if x.is_alive()]
    check("SIGTERM under load: exit 0 within the grace period", rc == 0 and took < 10, (rc, took, s.output()[-1500:]))
    check("every client got an answer, an error or a closed connection (none hangs)",
          not alive and len(results) == 12, results)
    check("finished requests answered 200; cut ones 503 or closed",
          all(r[1] in (200, 503) for r in results if r[0] in ("post", "stream")), results)
    s.kill()


def main():
    model = make_model("tiny")
    s = Server(model, "--parallel", "2", "-c", "256", "--max-body", "1048576")
    try:
        for f in (test_bad_inputs, test_connections):
            try:
                f(s)
            except Exception as e:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                check(f.__name__ + " raised", False, repr(e))
        rc = s.stop()
        check("SIGINT/SIGTERM after abuse: exit 0", rc == 0, s.output()[-1000:])
    finally:
        s.kill()
    for f in (test_queue_and_cancel, test_shutdown_under_load):
        run_checked(f, model)
    print("total %.1f s" % (time.time() - T0))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
