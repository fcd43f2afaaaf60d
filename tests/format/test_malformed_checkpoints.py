"""Malformed checkpoints: each kind of damage fails with its own clear message
(naming the file and the tensor, field or byte offset) and never crashes.

Runs `ringlm info` on damaged copies of a small random checkpoint and checks
the exit status (1, not a signal) and the message on stderr."""
import json
import os
import shutil
import struct
import subprocess
import sys

RINGLM = os.environ.get("RINGLM", "build/ringlm")
TMP = os.environ.get("RL_TEST_TMP", "/tmp/rl_test_malformed")


def read_st(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path, header, data, header_len=None):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", header_len if header_len is not None else len(h)))
        f.write(h)
        f.write(data)


def edit_header(fn):
    def mutate(d):
        p = os.path.join(d, "model.safetensors")
        h, data = read_st(p)
        data = fn(h, data)
        write_st(p, h, data)
    return mutate


def edit_file(fn):
    def mutate(d):
        p = os.path.join(d, "model.safetensors")
        with open(p, "rb") as f:
            raw = f.read()
        with open(p, "wb") as f:
            f.write(fn(raw))
    return mutate


def edit_config(fn):
    def mutate(d):
        p = os.path.join(d, "config.json")
        with open(p) as f:
            text = f.read()
        with open(p, "w") as f:
            f.write(fn(text))
    return mutate


QKV0 = "model.layers.0.attention.query_key_value.weight"
BIAS1 = "model.layers.1.mlp.gate.expert_bias"


def swap_shape(h, data):
    h[QKV0]["shape"] = h[QKV0]["shape"][::-1]  # same bytes, wrong shape
    return data


def drop_tensor(h, data):
    h["model.layers.2.attention.dense.weight_renamed"] = h.pop("model.layers.2.attention.dense.weight")
    return data


def overlap(h, data):
    names = sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])
    a, b = names[3], names[4]
    h[b]["data_offsets"][0] -= 2
    h[b]["data_offsets"][1] -= 2
    return data


def out_of_range(h, data):
    names = sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][1])
    last = names[-1]
    h[last]["data_offsets"][1] += 4096
    return data


def wrong_dtype(h, data):
    h[BIAS1]["dtype"] = "I32"  # same size as F32: refused by name
    return data


def len_mismatch(h, data):
    h[BIAS1]["shape"] = [h[BIAS1]["shape"][0] + 1]
    return data


def bad_header_json(raw):
    n = struct.unpack("<Q", raw[:8])[0]
    return raw[:8] + b"{" + raw[9:8 + n] .replace(b'"dtype"', b'dtype', 1) + raw[8 + n:]


def lying_length(raw):
    return struct.pack("<Q", len(raw) * 4) + raw[8:]


CASES = [
    # name, mutation, substrings the message must contain
    ("truncated data", edit_file(lambda raw: raw[:len(raw) - 100]), ["model.safetensors", "data section"]),
    ("truncated header", edit_file(lambda raw: raw[:6]), ["model.safetensors", "8"]),
    ("header length lies", edit_file(lying_length), ["model.safetensors", "header length"]),
    ("bad header JSON", edit_file(bad_header_json), ["model.safetensors", "JSON"]),
    ("overlapping offsets", edit_header(overlap), ["model.safetensors", "overlap"]),
    ("offsets out of range", edit_header(out_of_range), ["model.safetensors", "data_offsets"]),
    ("wrong shape", edit_header(swap_shape), [QKV0, "expected"]),
    ("missing tensor", edit_header(drop_tensor), ["missing tensor 'model.layers.2.attention.dense.weight'"]),
    ("unsupported dtype", edit_header(wrong_dtype), [BIAS1, "I32"]),
    ("byte length != shape", edit_header(len_mismatch), [BIAS1, "bytes"]),
    ("config bad JSON", edit_config(lambda t: t[:-5]), ["config.json", "invalid JSON"]),
    ("config missing key", edit_config(lambda t: json.dumps({k: v for k, v in json.loads(t).items() if k != "num_hidden_layers"})),
     ["config.json", "missing required key 'num_hidden_layers'"]),
    ("config wrong type", edit_config(lambda t: json.dumps({**json.loads(t), "hidden_size": "64"})),
     ["config.json", "'hidden_size' must be an integer"]),
    ("config shape disagrees", edit_config(lambda t: json.dumps({**json.loads(t), "hidden_size": 48})),
     ["expected"]),
    ("no weights", lambda d: os.remove(os.path.join(d, "model.safetensors")), ["model.safetensors"]),
]


def main():
    os.makedirs(TMP, exist_ok=True)
    good = os.path.join(TMP, "good")
    shutil.rmtree(good, ignore_errors=True)
    subprocess.run([RINGLM, "mkmodel", "--preset", "test", "-o", good, "--seed", "3"], check=True)
    r = subprocess.run([RINGLM, "info", "-m", good], capture_output=True, text=True)
    passed = failed = 0
    if r.returncode != 0:
        print("the undamaged checkpoint does not load:", r.stderr)
        failed += 1
    for name, mutate, want in CASES:
        d = os.path.join(TMP, "bad")
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(good, d)
        mutate(d)
        r = subprocess.run([RINGLM, "info", "-m", d], capture_output=True, text=True)
        msg = r.stderr.strip()
        ok = r.returncode == 1 and all(w in msg for w in want)
        print(f"{'ok  ' if ok else 'FAIL'} {name:24s} exit {r.returncode}: {msg}")
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"     expected exit 1 and {want}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
