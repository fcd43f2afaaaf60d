"""`ringlm train` end to end on a small config: the loss goes down; a run
stopped mid-way (--stop-at, as Ctrl-C does) and resumed ends with the same
model and optimizer files, byte for byte, and the same per-step losses as an
uninterrupted run; runs with -t 1 / -t 3 and with --recompute on / off end
with the same files byte for byte; SIGINT saves a checkpoint that `generate`
loads; a --config-file gives the same run as the flags."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

RINGLM = os.environ.get("RINGLM", "build/ringlm")
TMP = os.environ.get("RL_TEST_TMP", "/tmp/rl_test_train")
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# the CI run: 50 steps, stopped and resumed half-way
STEPS = 50
RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)[-1500:]), flush=True)


def run(args, **kw):
    return subprocess.run([RINGLM] + args, capture_output=True, text=True, **kw)


def steps(out):
    """step -> (loss, lr, grad norm) as printed (tokens/s left out)."""
    r = {}
    for m in re.finditer(r"^step (\d+)/\d+ \| loss (\S+) \| lr (\S+) \| grad norm (\S+)", out, re.M):
        r[int(m.group(1))] = m.group(2, 3, 4)
    return r


def same_file(a, b):
    return open(a, "rb").read() == open(b, "rb").read()


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    parts = []
    for f in sorted(os.listdir(os.path.join(ROOT, "docs"))) + ["README.md"]:
        p = os.path.join(ROOT, "docs", f) if f != "README.md" else os.path.join(ROOT, f)
        if p.endswith(".md"):
            parts.append(open(p, encoding="utf-8").read())
    corpus = os.path.join(TMP, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n%\n".join(parts))
    tok = os.path.join(TMP, "tok.json")
    data = os.path.join(TMP, "data.bin")
    r = run(["tokenizer-train", "--input", corpus, "--vocab-size", "384", "--special", "<|endoftext|>", "-o", tok])
    check("tokenizer-train", r.returncode == 0, r.stderr)
    r = run(["prepare-data", "--tokenizer", tok, "--input", corpus, "--doc-sep", "%", "-o", data])
    check("prepare-data", r.returncode == 0, r.stderr)
    common = ["--data", data, "--steps", str(STEPS), "--seq-len", "32", "--batch-tokens", "64", "--lr", "5e-3",
              "--warmup", "2", "--eval-every", str(STEPS // 2), "--eval-windows", "2", "--seed", "3", "-t", "2"]
    a = os.path.join(TMP, "a")
    ra = run(["train", "--preset", "test", "--tokenizer", tok, "-o", a] + common)
    check("train runs", ra.returncode == 0, ra.stdout + ra.stderr)
    sa = steps(ra.stdout)
    check("a progress line per step", sorted(sa) == list(range(1, STEPS + 1)), ra.stdout)
    if len(sa) == STEPS:
        first = sum(float(sa[i][0]) for i in (1, 2, 3)) / 3
        last = sum(float(sa[i][0]) for i in (STEPS - 2, STEPS - 1, STEPS)) / 3
        check("the loss goes down (%.3f -> %.3f)" % (first, last), last < first - 0.1)
    check("validation loss reported", len(re.findall(r"^eval step (%d|%d) \| val loss" % (STEPS // 2, STEPS), ra.stdout, re.M)) == 2,
          ra.stdout)
    check("load balance reported", "load max/mean" in ra.stdout)
    for f in ["config.json", "model.safetensors", "tokenizer.json", "optimizer.safetensors", "trainer_state.json",
              "train_log.tsv"]:
        check("checkpoint has " + f, os.path.exists(os.path.join(a, f)))
    g = run(["generate", "-m", a, "-p", "The model", "-n", "8", "--temp", "0"])
    check("generate loads the checkpoint", g.returncode == 0, g.stderr)

    # stop half-way and resume: bitwise the same as never stopped
    b = os.path.join(TMP, "b")
    rb = run(["train", "--preset", "test", "--tokenizer", tok, "-o", b, "--stop-at", str(STEPS // 2)] + common)
    check("--stop-at stops and saves", rb.returncode == 0 and "stopped at step %d" % (STEPS // 2) in rb.stdout, rb.stdout + rb.stderr)
    st = json.load(open(os.path.join(b, "trainer_state.json")))
    check("state records the stop step", st.get("step") == STEPS // 2, st)
    rc = run(["train", "--resume", "--data", data, "-o", b])
    check("--resume runs", rc.returncode == 0, rc.stdout + rc.stderr)
    sb = steps(rb.stdout)
    sb.update(steps(rc.stdout))
    check("resumed steps print the same loss, lr and grad norm", sb == sa,
          [(k, sa.get(k), sb.get(k)) for k in range(1, STEPS + 1) if sa.get(k) != sb.get(k)][:3])
    check("model.safetensors bitwise equal", same_file(os.path.join(a, "model.safetensors"),
                                                       os.path.join(b, "model.safetensors")))
    check("optimizer.safetensors bitwise equal", same_file(os.path.join(a, "optimizer.safetensors"),
                                                           os.path.join(b, "optimizer.safetensors")))

    # thread count and recomputation change no bit of the run
    short = [x if x != str(STEPS) else "10" for x in common[:-2]]
    runs = {}
    for name, extra in (("t2", ["-t", "2"]), ("t1rc", ["-t", "1", "--recompute", "on"]),
                        ("t3", ["-t", "3", "--recompute", "off"])):
        out = os.path.join(TMP, "short_" + name)
        r = run(["train", "--preset", "test", "--tokenizer", tok, "-o", out] + short + extra)
        check("short run " + name, r.returncode == 0, r.stdout + r.stderr)
        runs[name] = (out, steps(r.stdout), r.stdout)
    check("--recompute on reported", "recompute on: on" in runs["t1rc"][2], runs["t1rc"][2][:600])
    for name in ("t1rc", "t3"):
        same = all(same_file(os.path.join(runs["t2"][0], f), os.path.join(runs[name][0], f))
                   for f in ("model.safetensors", "optimizer.safetensors"))
        check("%s: same losses and files as -t 2, byte for byte" % name,
              same and runs[name][1] == runs["t2"][1] and len(runs["t2"][1]) == 10)

    # the same run from a config file
    cfgf = os.path.join(TMP, "train.json")
    json.dump({"preset": "test", "tokenizer": tok, "data": data, "steps": STEPS, "seq_len": 32, "batch_tokens": 64,
               "lr": 5e-3, "warmup": 2, "eval_every": STEPS // 2, "eval_windows": 2, "seed": 3, "threads": 2},
              open(cfgf, "w"))
    c = os.path.join(TMP, "c")
    rj = run(["train", "--config-file", cfgf, "-o", c])
    check("--config-file gives the same run", rj.returncode == 0 and steps(rj.stdout) == sa and
          same_file(os.path.join(a, "model.safetensors"), os.path.join(c, "model.safetensors")),
          rj.stdout[-800:] + rj.stderr)

    # SIGINT: saves and exits cleanly
    d = os.path.join(TMP, "d")
    p = subprocess.Popen([RINGLM, "train", "--preset", "test", "--tokenizer", tok, "-o", d, "--data", data,
                          "--steps", "100000", "--seq-len", "32", "--batch-tokens", "64", "-t", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    t0 = time.time()
    while time.time() - t0 < 60:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("step 2/"):
            p.send_signal(signal.SIGINT)
            break
    out, err = p.communicate(timeout=60)
    out = "".join(lines) + out
    check("SIGINT: clean exit", p.returncode == 0 and "interrupted" in out, out[-600:] + err)
    last = max(steps(out)) if steps(out) else -1
    st = json.load(open(os.path.join(d, "trainer_state.json"))) if os.path.exists(
        os.path.join(d, "trainer_state.json")) else {}
    check("SIGINT: state saved at the last step done", st.get("step") == last, (st.get("step"), last))
    g = run(["generate", "-m", d, "-p", "The", "-n", "4", "--temp", "0"])
    check("SIGINT: the checkpoint loads", g.returncode == 0, g.stderr)
    r = run(["train", "--preset", "test", "-o", d, "--data", data])
    check("a second fresh run into the same directory is refused", r.returncode != 0 and "--resume" in r.stderr,
          r.stderr)
    print("%d passed, %d failed" % (sum(RESULTS), len(RESULTS) - sum(RESULTS)))
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
