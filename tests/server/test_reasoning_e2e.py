"""reasoning_content and tool_calls end to end, from a model that really
emits the tags: make_tagged_model.py trains (with `ringlm train`, ~30 s on
2 cores) a tiny model on two Ring-template transcripts, one answering with
<think>...</think> and one with a <tool_call>. Through the real server, the
greedy answers must be exactly the assistant turns it was trained on: the
reasoning and the content split apart, the tool call with its name and
arguments and finish_reason "tool_calls"; the raw text of the same prompt
from /v1/completions shows the tags came from the model; streamed deltas
reassemble to the non-streamed message."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serverlib import RINGLM, TMP, Server, check, run_checked, summary  # noqa: E402

T0 = time.time()
HERE = os.path.dirname(os.path.abspath(__file__))


def train():
    out = os.path.join(TMP, "tagged")
    env = dict(os.environ, RINGLM=RINGLM, TAGGED_STEPS="60")
    r = subprocess.run([sys.executable, os.path.join(HERE, "make_tagged_model.py"), out], capture_output=True,
                       text=True, env=env)
    if not check("make_tagged_model.py trains the model", r.returncode == 0, r.stdout + r.stderr):
        return None, None
    return out, json.loads(r.stdout.strip().splitlines()[-1])


def reassemble(events):
    """The chat message a client builds from the deltas (OpenAI semantics:
    tool_calls pieces are merged by index)."""
    msg = {"content": "", "reasoning_content": "", "tool_calls": {}}
    finish = None
    for e in events:
        c = e["choices"][0]
        d = c["delta"]
        msg["content"] += d.get("content") or ""
        msg["reasoning_content"] += d.get("reasoning_content") or ""
        for tc in d.get("tool_calls") or []:
            x = msg["tool_calls"].setdefault(tc["index"], {"id": "", "type": "", "function": {"name": "", "arguments": ""}})
            x["id"] += tc.get("id") or ""
            x["type"] += tc.get("type") or ""
            x["function"]["name"] += (tc.get("function") or {}).get("name") or ""
            x["function"]["arguments"] += (tc.get("function") or {}).get("arguments") or ""
        finish = c.get("finish_reason") or finish
    msg["tool_calls"] = [msg["tool_calls"][i] for i in sorted(msg["tool_calls"])]
    return msg, finish


def render_prompt(model, conv):
    p = os.path.join(TMP, "prompt.json")
    body = {"messages": conv["messages"]}
    if "tools" in conv:
        body["tools"] = conv["tools"]
    json.dump(body, open(p, "w"))
    r = subprocess.run([RINGLM, "template", "--tokenizer-config", model, "--messages", p, "--add-generation-prompt"],
                       capture_output=True, text=True)
    return r.stdout


def test_reasoning(s, model, conv):
    want = conv["answer"]
    body = {"messages": conv["messages"], "temperature": 0, "max_tokens": 64}
    st, r = s.post("/v1/chat/completions", body)
    m = r["choices"][0]["message"] if st == 200 else {}
    check("reasoning: reasoning_content is the trained reasoning", m.get("reasoning_content") == want["reasoning_content"],
          (st, r))
    check("reasoning: content is the trained answer, without the tags", m.get("content") == want["content"], m)
    check("reasoning: finish_reason stop, no tool_calls", st == 200 and r["choices"][0]["finish_reason"] == "stop" and
          "tool_calls" not in m, r)
    st, raw = s.post("/v1/completions", {"prompt": render_prompt(model, conv), "temperature": 0, "max_tokens": 64})
    text = raw["choices"][0]["text"] if st == 200 else ""
    check("the model itself emits <think>...</think> (raw completion)", "<think>" in text and "</think>" in text and
          text.split("</think>")[0].split("<think>")[1].strip("\n") == want["reasoning_content"], (st, raw))
    st, ev, done = s.stream("/v1/chat/completions", dict(body, stream=True))
    sm, finish = reassemble(ev)
    check("reasoning: streamed deltas reassemble to the same message", st == 200 and done and
          sm["reasoning_content"] == m.get("reasoning_content") and sm["content"] == m.get("content") and
          not sm["tool_calls"] and finish == "stop", (sm, finish, m))
    check("reasoning: no delta carries a tag", not any("<" in (e["choices"][0]["delta"].get("content") or "") +
                                                        (e["choices"][0]["delta"].get("reasoning_content") or "")
                                                        for e in ev), ev)


def test_tool_call(s, model, conv):
    want = conv["answer"]["tool_calls"][0]["function"]
    body = {"messages": conv["messages"], "tools": conv["tools"], "temperature": 0, "max_tokens": 64}
    st, r = s.post("/v1/chat/completions", body)
    ch = r["choices"][0] if st == 200 else {}
    m = ch.get("message", {})
    calls = m.get("tool_calls") or []
    ok = len(calls) == 1 and calls[0]["type"] == "function" and isinstance(calls[0]["id"], str) and calls[0]["id"]
    ok = ok and calls[0]["function"]["name"] == want["name"]
    args = calls[0]["function"]["arguments"] if ok else None
    check("tool call: one call, type function, the trained name", ok, r)
    check("tool call: arguments is a JSON string of the trained arguments",
          isinstance(args, str) and json.loads(args) == want["arguments"], args)
    check("tool call: finish_reason tool_calls, no content", ch.get("finish_reason") == "tool_calls" and
          m.get("content") in (None, ""), r)
    st, raw = s.post("/v1/completions", {"prompt": render_prompt(model, conv), "temperature": 0, "max_tokens": 64})
    text = raw["choices"][0]["text"] if st == 200 else ""
    check("the model itself emits <tool_call>{...}</tool_call> (raw completion)", "<tool_call>" in text and
          json.loads(text.split("<tool_call>")[1].split("</tool_call>")[0]) == want, (st, raw))
    st, ev, done = s.stream("/v1/chat/completions", dict(body, stream=True))
    sm, finish = reassemble(ev)
    check("tool call: streamed deltas reassemble to the same call", st == 200 and done and
          sm["tool_calls"] == [{k: calls[0][k] for k in ("id", "type", "function")}] and sm["content"] == "" and
          finish == "tool_calls", (sm, finish, calls))
    # without tools in the request the parser does not look for calls
    st, r2 = s.post("/v1/chat/completions", {k: v for k, v in body.items() if k != "tools"})
    check("without tools, no tool_calls", st == 200 and "tool_calls" not in r2["choices"][0]["message"], r2)


def main():
    model, convs = train()
    if model:
        print("     (trained in %.1f s)" % (time.time() - T0), flush=True)
        s = Server(model, "--parallel", "2")
        try:
            for f, conv in ((test_reasoning, convs[0]), (test_tool_call, convs[1])):
                run_checked(f, s, model, conv)
            check("SIGTERM: exit 0", s.stop() == 0)
        finally:
            s.kill()
    print("total %.1f s" % (time.time() - T0))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
