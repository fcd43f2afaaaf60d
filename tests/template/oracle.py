"""The template oracle: Jinja2 configured the way Hugging Face transformers
renders chat templates (transformers/utils/chat_template_utils.py):
ImmutableSandboxedEnvironment(trim_blocks, lstrip_blocks, loopcontrols),
its own tojson filter, raise_exception and strftime_now globals. strftime_now
is pinned to a given Unix time (UTC) so that runs are deterministic; ringlm
gets the same time through --now."""
import json
from datetime import datetime, timezone

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

SPECIAL_KEYS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                "cls_token", "mask_token"]


def make_env(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent,
                          separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.fromtimestamp(now, timezone.utc).strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                       extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def special_tokens(cfg):
    out = {}
    for k in SPECIAL_KEYS:
        v = cfg.get(k)
        if isinstance(v, dict):
            v = v.get("content")
        if isinstance(v, str):
            out[k] = v
    add = cfg.get("additional_special_tokens")
    if isinstance(add, list):
        out["additional_special_tokens"] = [
            (t.get("content") if isinstance(t, dict) else t) for t in add
            if isinstance(t, str) or (isinstance(t, dict) and isinstance(t.get("content"), str))]
    return out


def pick_template(cfg, tools):
    ct = cfg["chat_template"]
    if isinstance(ct, str):
        return ct
    d = {e["name"]: e["template"] for e in ct}
    if tools is not None and "tool_use" in d:
        return d["tool_use"]
    return d["default"]


def render(source, messages, tools=None, add_generation_prompt=False, specials=None,
           extra=None, now=1721995200, documents=None):
    """Returns ("ok", text) or ("error", exception type name, message)."""
    env = make_env(now)
    try:
        tmpl = env.from_string(source)
        kwargs = dict(specials or {})
        kwargs.update(extra or {})
        text = tmpl.render(messages=messages, tools=tools, documents=documents,
                           add_generation_prompt=add_generation_prompt, **kwargs)
        return ("ok", text)
    except Exception as e:  # noqa: BLE001 - every error is an outcome to compare
        return ("error", type(e).__name__, str(e))
