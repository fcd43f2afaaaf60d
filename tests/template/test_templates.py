#!/usr/bin/python3
"""ringlm template vs the Jinja2 oracle (oracle.py), byte for byte.

1. Every chat template in ../shared/data (chat_templates/*.json and the
   tokenizer_config.json files that have one) and in tests/template/data
   (*.jinja, public templates, see SOURCES.md there; *.json configs) is
   rendered on a set of conversations (system/no system, multi-turn, tools,
   tool responses, reasoning content, list content, unicode, empty), with
   add_generation_prompt off and on and with enable_thinking unset/true/false.
2. A table of small templates exercises the interpreter feature by feature.

Outcomes must agree: the same text, or both fail; for raise_exception the
message must appear in ringlm's error. Env: RINGLM (the binary),
RL_TEST_TMP (scratch dir). Ends with "N passed, N failed"."""
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import oracle  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
RINGLM = os.environ.get("RINGLM", os.path.join(ROOT, "build", "ringlm"))
TMP = os.environ.get("RL_TEST_TMP", "/tmp/rl_test_templates")
os.makedirs(TMP, exist_ok=True)
NOW = 1721995200  # 2024-07-26 12:00:00 UTC

passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)
        if detail:
            print(detail[:3000])


def run_ringlm(cfg_path, messages, tools=None, agp=False, extra=None, body_extra=None):
    body = messages if tools is None and not body_extra else {"messages": messages}
    if tools is not None:
        body["tools"] = tools
    if body_extra:
        body.update(body_extra)
    mpath = os.path.join(TMP, "messages.json")
    with open(mpath, "w", encoding="utf-8") as f:
        json.dump(body, f, ensure_ascii=False)
    cmd = [RINGLM, "template", "--tokenizer-config", cfg_path, "--messages", mpath, "--now", str(NOW)]
    if agp:
        cmd.append("--add-generation-prompt")
    for k, v in (extra or {}).items():
        cmd += ["--var", "%s=%s" % (k, json.dumps(v, ensure_ascii=False))]
    p = subprocess.run(cmd, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def compare(what, expect, rc, out, err):
    if expect[0] == "ok":
        want = expect[1].encode("utf-8")
        check(rc == 0 and out == want, what,
              "oracle: %r\nringlm rc=%d: %r\n%s" % (want, rc, out, err))
    else:
        ok = rc != 0 and not out and "Segmentation" not in err and "Sanitizer" not in err
        if ok and expect[1] == "TemplateError":
            ok = expect[2] in err
        check(ok, what, "oracle raised %s: %s\nringlm rc=%d out=%r err=%s" % (expect[1], expect[2], rc, out, err))


# ----------------------------------------------------------------- data
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
            "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Add two numbers",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}},
]


def tool_conv(args_as_string):
    args = {"city": "Zürich", "unit": "c"}
    return [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Zürich and 2+3?"},
        {"role": "assistant", "content": None if args_as_string else "",
         "tool_calls": [
             {"id": "call12345", "type": "function",
              "function": {"name": "get_weather",
                           "arguments": json.dumps(args, ensure_ascii=False) if args_as_string else args}},
             {"id": "call67890", "type": "function",
              "function": {"name": "add", "arguments": '{"a": 2, "b": 3}' if args_as_string else {"a": 2, "b": 3.5}}}]},
        {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21, \"sky\": \"sunny\"}"},
        {"role": "tool", "tool_call_id": "call67890", "content": "5"},
        {"role": "assistant", "content": "It is 21°C and sunny; 2+3=5."},
        {"role": "user", "content": "Thanks!"},
    ]


CONVS = [
    ("sys+user", [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}], None),
    ("user", [{"role": "user", "content": "Hello, how are you?"}], None),
    ("multi", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
               {"role": "user", "content": "Tell me a joke."}], None),
    ("multi+sys", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"},
                   {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},
                   {"role": "assistant", "content": "A2"}], None),
    ("tools-str-args", tool_conv(True), TOOLS),
    ("tools-dict-args", tool_conv(False), TOOLS),
    ("tools-only-user", [{"role": "user", "content": "What's the weather in Paris?"}], TOOLS),
    ("reasoning-field", [{"role": "user", "content": "2+2?"},
                         {"role": "assistant", "content": "4", "reasoning_content": "Two plus two is four."},
                         {"role": "user", "content": "3+3?"},
                         {"role": "assistant", "content": "6", "reasoning_content": "\nThree and three.\n"}], None),
    ("reasoning-inline", [{"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"},
                          {"role": "user", "content": "and 3+3?"}], None),
    ("unicode", [{"role": "system", "content": "Réponds en français 🇫🇷."},
                 {"role": "user", "content": "  «Bonjour» \"quoted\" 'single' back\\slash\ttab\nnewline 世界 🎉  "}], None),
    ("list-content", [{"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "image"}]}], None),
    ("empty", [], None),
    ("two-systems", [{"role": "system", "content": "A"}, {"role": "user", "content": "u"},
                     {"role": "system", "content": "B"}, {"role": "user", "content": "v"}], None),
]

EXTRAS = [None, {"enable_thinking": True}, {"enable_thinking": False}]


def template_sources():
    """(name, config path for ringlm, template source, specials)"""
    out = []
    paths = sorted(glob.glob(os.path.join(SHARED, "chat_templates", "*.json")))
    paths += sorted(glob.glob(os.path.join(SHARED, "tokenizers", "*", "tokenizer_config.json")))
    paths += sorted(glob.glob(os.path.join(HERE, "data", "*.json")))
    for p in paths:
        with open(p, encoding="utf-8") as f:
            cfg = json.load(f)
        if not cfg.get("chat_template"):
            continue
        out.append((os.path.relpath(p, os.path.dirname(ROOT)), p, cfg))
    for p in sorted(glob.glob(os.path.join(HERE, "data", "*.jinja"))):
        with open(p, encoding="utf-8") as f:
            src = f.read()
        # a config beside the file gives the special tokens these templates expect
        cfg = {"chat_template": src, "bos_token": "<s>", "eos_token": "</s>"}
        cp = os.path.join(TMP, os.path.basename(p) + ".json")
        with open(cp, "w", encoding="utf-8") as f:
            json.dump(cfg, f, ensure_ascii=False)
        out.append((os.path.relpath(p, os.path.dirname(ROOT)), cp, cfg))
    return out


def test_real_templates():
    for name, cp, cfg in template_sources():
        specials = oracle.special_tokens(cfg)
        for cname, msgs, tools in CONVS:
            src = oracle.pick_template(cfg, tools)
            for agp in (False, True):
                for extra in EXTRAS:
                    if extra is not None and agp is False and cname not in ("reasoning-inline",):
                        continue
                    expect = oracle.render(src, msgs, tools=tools, add_generation_prompt=agp,
                                           specials=specials, extra=extra, now=NOW)
                    rc, out, err = run_ringlm(cp, msgs, tools, agp, extra)
                    compare("%s / %s / agp=%s / %s" % (name, cname, agp, extra), expect, rc, out, err)


# ----------------------------------------------------------------- features
MSGS = [{"role": "system", "content": "sys"}, {"role": "user", "content": "Hello World"},
        {"role": "assistant", "content": "  reply  ", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1, "y": [1, 2.5, None, True]}}}]}]

FEATURES = [
    # output, literals, Python str()
    "{{ 1 }}|{{ 1.0 }}|{{ 1.5e-7 }}|{{ 1e22 }}|{{ 0.1 + 0.2 }}|{{ 10 / 4 }}|{{ 10 // 4 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 7.5 % 2 }}",
    "{{ true }}{{ false }}{{ none }}{{ True }}{{ None }}|{{ [1, 'a', none, true, 2.0] }}|{{ {'a': 1, 'b': [1, {'c': 'd'}]} }}|{{ (1,) }}|{{ (1, 'x') }}|{{ 'it\\'s' }}|{{ ['it\\'s', \"q\\\"\"] }}",
    "{{ 'a' ~ 1 ~ none ~ undefined_thing }}|{{ 'ab' * 3 }}|{{ [1] * 2 }}|{{ [1, 2] + [3] }}|{{ 'x' + 'y' }}|{{ 'adj' 'acent' }}",
    "{{ 'line\\nbreak\\ttab \\u00e9 \\x41 \\101' }}",
    # comparisons, logic
    "{{ 1 < 2 < 3 }}{{ 1 < 3 < 2 }}{{ 1 == 1.0 }}{{ true == 1 }}{{ 'a' < 'b' }}{{ [1, 2] < [1, 3] }}{{ 'a' in 'cat' }}{{ 3 not in [1, 2] }}{{ 'k' in {'k': 1} }}",
    "{{ 0 or 'x' }}|{{ 1 and 'y' }}|{{ '' and 'z' }}|{{ not none }}|{{ none or [] }}|{{ 'yes' if 1 else 'no' }}|{{ 'yes' if 0 }}|{{ 'a' if false else 'b' if true else 'c' }}",
    # slicing and indexing
    "{{ 'hello'[1:3] }}|{{ 'hello'[::-1] }}|{{ 'hello'[-2:] }}|{{ [1,2,3,4,5][::2] }}|{{ [1,2,3,4,5][-1:0:-2] }}|{{ 'héllo wörld'[::-1] }}|{{ 'héllo'[1] }}|{{ messages[-1].role }}|{{ messages[1:][0]['content'] }}|{{ messages[9] is defined }}",
    # attribute / item access
    "{{ messages[0].content }}{{ messages[0]['content'] }}{{ messages.0.role }}{{ messages[2].tool_calls[0].function.arguments.y }}{{ messages[0].nothing }}|{{ messages[0].nothing is defined }}",
    # is-tests
    "{% for v in [1, 1.5, 'a', none, true, [1], {'a': 1}, undefined_var] %}{{ v is number }}{{ v is integer }}{{ v is float }}{{ v is string }}{{ v is none }}{{ v is boolean }}{{ v is mapping }}{{ v is iterable }}{{ v is sequence }}{{ v is defined }}{{ v is true }}{{ v is false }};{% endfor %}",
    "{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}{{ 2 is eq 2 }}{{ 2 is ne 2 }}{{ 2 is lt 3 }}{{ 'a' is in 'abc' }}{{ 'ABC' is upper }}{{ 'abc' is lower }}{{ none is sameas none }}{{ 'upper' is filter }}{{ 'odd' is test }}{{ 1 is not string }}",
    # string methods
    "{{ '  x y  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\n\\na\\n'.lstrip('\\n') }}|{{ 'a\\n\\n'.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ 'aXbXc'.replace('X', '-') }}|{{ 'aXbXc'.replace('X', '-', 1) }}",
    "{{ 'Hello'.upper() }}{{ 'Hello'.lower() }}{{ 'hello world'.title() }}{{ 'hELLO'.capitalize() }}{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'abcabc'.find('c') }}{{ 'abcabc'.rfind('c') }}{{ 'abcabc'.count('b') }}{{ '-'.join(['a', 'b']) }}{{ '{} and {}'.format(1, 'x') }}{{ '{0}{name}'.format('p', name='q') }}{{ '42'.isdigit() }}{{ 'ab'.isalpha() }}{{ ' '.isspace() }}{{ '7'.zfill(3) }}{{ 'x'.center(5) }}|{{ 'a.b.c'.partition('.') }}{{ 'ab'.removeprefix('a') }}",
    "{{ 'a\\nb\\r\\nc'.splitlines() }}|{{ '%s-%d-%05.1f|%3s|%-3s|' % ('x', 7, 3.14159, 'y', 'z') }}|{{ '%s' % none }}",
    # dict methods
    "{% for k, v in {'b': 1, 'a': [2]}.items() %}{{ k }}={{ v }};{% endfor %}{{ {'a': 1}.keys() | list }}{{ {'a': 1}.values() | list }}{{ {'a': 1}.get('a') }}{{ {'a': 1}.get('z') }}{{ {'a': 1}.get('z', 'dflt') }}",
    # filters
    "{{ '  pad  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ [3, 1, 2] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ ['b', 'A', 'a', 'C'] | sort }}|{{ ['b', 'A', 'a'] | sort(case_sensitive=true) }}|{{ [1, 2, 1, 3] | unique | list }}|{{ ['A', 'a', 'b'] | unique | list }}|{{ [1, 2, 3] | reverse | list }}|{{ 'abc' | reverse }}",
    "{{ [1, 2, 3] | length }}{{ 'héllo' | length }}{{ {'a': 1} | count }}{{ undefined_x | length }}|{{ [1, 2, 3] | first }}{{ [1, 2, 3] | last }}{{ 'xyz' | first }}|{{ [1, 2, 3] | join(', ') }}|{{ messages | map(attribute='role') | join('/') }}|{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}|{{ messages | rejectattr('role', 'eq', 'user') | list | length }}",
    "{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3, 4] | reject('even') | list }}|{{ ['a', 'b'] | map('upper') | list }}|{{ [0, 1, '', 'x'] | select | list }}|{{ messages | selectattr('tool_calls') | list | length }}|{{ messages | selectattr('tool_calls', 'defined') | list | length }}",
    "{{ undefined_x | default('d') }}|{{ '' | default('e', true) }}|{{ none | default('n') }}|{{ 'x' | d('y') }}|{{ '3' | int + 1 }}|{{ '3.7' | int }}|{{ 'x' | int(5) }}|{{ 3.7 | int }}|{{ '2.5' | float }}|{{ 'x' | float }}|{{ -3 | abs }}|{{ 2.567 | round(2) }}|{{ 2.5 | round }}|{{ 3 | round }}|{{ 2.1 | round(method='ceil') }}|{{ 2.9 | round(0, 'floor') }}",
    "{{ 'hello world' | upper }}|{{ 'HeLLo' | lower }}|{{ 'hello big-world (x)' | title }}|{{ 'hELLO wORLD' | capitalize }}|{{ 'a-b-c' | replace('-', '+') }}|{{ 'ab' | center(6) }}|{{ 'one two  three' | wordcount }}|{{ 1 | string }}{{ [1] | string }}|{{ '<a href=\"x\">&\\'</a>' | escape }}|{{ 'x' | safe }}|{{ 'a%sb%s' | format(1, 'z') }}",
    "{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb\\n\\nc' | indent(2, true) }}|{{ 'a\\nb\\n\\nc' | indent(width='> ', first=true, blank=true) }}",
    "{{ {'b': 1, 'a': 2} | dictsort }}|{{ {'b': 1, 'a': 2} | items | list }}|{{ [1, 2, 3] | sum }}|{{ [1, 5, 3] | max }}|{{ [4, 2, 8] | min }}|{{ [[1, 2], [3]] | map('length') | list }}|{{ [1, 2, 3, 4, 5] | batch(2) | list }}|{{ 'ab' | list }}|{{ {'k': 1} | list }}",
    # tojson
    "{{ messages | tojson }}|{{ {'é': 'ü', 'n': none, 'f': 1.0, 'i': -3, 'b': false, 's': '\"\\\\\\n\\u0001'} | tojson }}",
    "{{ messages[2] | tojson(indent=2) }}|{{ {'b': [1, {}], 'a': []} | tojson(indent=4, sort_keys=true) }}|{{ {'a': [1, 2]} | tojson(separators=(',', ':')) }}|{{ {'é': 1} | tojson(ensure_ascii=true) }}|{{ '😀' | tojson(ensure_ascii=true) }}",
    # loops
    "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}/{{ loop.previtem.role if loop.previtem is defined else '-' }}/{{ loop.nextitem.role if loop.nextitem is defined else '-' }}/{{ loop.cycle('odd', 'even') }};{% endfor %}",
    "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1, 2, 3, 4] if x is even %}{{ x }}:{{ loop.index }}:{{ loop.length }},{% endfor %}|{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}|{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}|{% for c in 'héj' %}[{{ c }}]{% endfor %}|{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}",
    "{% for i in range(3) %}{% for j in range(2) %}{{ i }}{{ j }}{{ loop.index }}{% endfor %}{{ loop.index }} {% endfor %}|{{ range(5) | list }}{{ range(1, 10, 3) | list }}{{ range(5, 0, -2) | list }}",
    # scoping and namespace
    "{% set x = 1 %}{% for i in range(3) %}{{ x }}{% set x = x + 10 %}{{ x }},{% endfor %}{{ x }}|{% if true %}{% set y = 5 %}{% endif %}{{ y }}|{% set ns = namespace(c=0, items=[]) %}{% for i in range(4) %}{% set ns.c = ns.c + i %}{% endfor %}{{ ns.c }}|{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set t = (1, 2) %}{{ t }}",
    "{% set ns = namespace() %}{% set ns.found = false %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}|{% set d = dict(a=1, b='x') %}{{ d }}{{ d.a }}|{% set n2 = namespace({'k': 'v'}, z=1) %}{{ n2.k }}{{ n2.z }}",
    "{% set block_var %}Captured {{ messages | length }} messages{% endset %}[{{ block_var }}]|{% set up | upper %}shout {{ 'x' }}{% endset %}{{ up }}|{% filter upper %}filtered {{ 'y' }}{% endfilter %}|{% filter replace('a', 'o') | upper %}banana{% endfilter %}|{% with q = 5, r = 6 %}{{ q * r }}{% endwith %}{{ q is defined }}",
    # macros and call
    "{% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }}|{{ greet('Bob', 'Hi') }}|{{ greet('Cy', punct='?') }}|{{ greet() }}|{% macro va() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ va(1, 2, k=3) }}",
    "{% macro render_list(items) %}<ul>{% for i in items %}<li>{{ caller(i) }}</li>{% endfor %}</ul>{% endmacro %}{% call(item) render_list(['a', 'b']) %}[{{ item | upper }}]{% endcall %}|{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inner{% endcall %}",
    "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * (fact(n - 1) | int) }}{% endif %}{% endmacro %}{{ fact(10) }}|{% macro typ(v) %}{% if v is mapping %}{% for k, x in v | items %}{{ k }}:{{ typ(x) }};{% endfor %}{% elif v is iterable and v is not string %}[{% for x in v %}{{ typ(x) }}{% endfor %}]{% else %}{{ v }}{% endif %}{% endmacro %}{{ typ({'a': [1, {'b': 2}], 'c': 'd'}) }}",
    # whitespace control, trim_blocks, lstrip_blocks
    "A\n  {% if true %}\n    B\n  {% endif %}\nC\n{%- if true -%}\n   D   \n{%- endif %}\n{{- ' E ' -}}\n  F  {{ 'G' }}  \n{# comment #}\nH\n  {#- c2 -#}  I\n{%+ if true %}J{% endif +%}\nK {%- raw %} {{ not evaluated }} {% endraw -%} L\n",
    "{% for m in messages %}\n  {{ m.role }}\n{% endfor %}\n  {%- for m in messages %}\n{{ m.role }}:{{ m.content }}\n  {% endfor -%}\n  end  \n\n",
    "\t{% if true %}tab-stripped{% endif %}\n \u00a0{% if true %}nbsp-stripped{% endif %}\n{{ 'x' }}   {% if true %}not-stripped{% endif %}\r\nCRLF\rCR\n",
    # errors (both must fail; raise_exception messages must match)
    "{{ raise_exception('custom failure ' ~ messages | length) }}",
    "{{ undefined_var.attr }}", "{{ messages[0].nothing.deeper }}", "{{ 1 / 0 }}", "{{ 'a' + 1 }}", "{{ [].append(1) }}",
    "{{ none.x.y }}", "{{ 1 < 'a' }}", "{% for x in 5 %}{% endfor %}", "{{ x | no_such_filter }}", "{% if %}", "{% for %}",
    "{{ 'unterminated }}", "{% if true %}never closed", "{% endif %}", "{{ (1 }}", "{% set x.y = 1 %}", "{{ undefined_fn() }}",
    "{{ range(200000) | length }}", "{{ messages | tojson(indent='  ') }}{{ undefined_v | tojson }}",
    "{% extends 'base.html' %}", "{{ 'x'.nosuchmethod() }}", "{{ {'a': 1}.update({'b': 2}) }}",
    # str.format fields: an index past the arguments, one past Py_ssize_t (a fuzzer's crash:
    # the overflowed index read outside the arguments), non-digit names are keywords
    "{{ '{5}'.format(1) }}", "{{ '{5555555555555555555555555555555} and {}'.format(1) }}",
    "{{ '{0a}'.format(1) }}", "{{ '{-1}'.format(1) }}", "{{ '{1}{0}'.format('a', 'b') }}",
    # Markup (|safe, |escape) and generator (map/select/...) semantics as in Jinja2
    "{{ 'a<'|safe + '<b>' }}|{{ '<x>' + '\"q\"'|safe }}|{{ '<'|e }}|{{ ('<'|e) + '&' }}|{{ 'a'|safe ~ '<' }}|{{ messages|tojson|safe }}",
    "{{ 'yes' if [] | select else 'no' }}|{{ 'yes' if none | map('upper') else 'no' }}|{{ none | selectattr('x') | list }}|{{ [1, 2] | map('string') | first }}|{{ [3, 1] | reverse | list }}{{ ([3, 1] | reverse)[0] is defined }}",
    "{{ [1, 2] | map('string') | length }}", "{{ messages | map(attribute='role') | tojson }}", "{{ [1, 2] | select | last }}",
    # strftime_now and date pinning
    "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S %A %B') }}",
    # special tokens and add_generation_prompt
    "{{ bos_token }}{{ eos_token }}{{ add_generation_prompt }}{{ tools }}{{ documents }}{{ tools is none }}{{ unk_token is defined }}",
]


def test_features():
    specials = {"bos_token": "<s>", "eos_token": "</s>"}
    for i, src in enumerate(FEATURES):
        cfg = {"chat_template": src, "bos_token": "<s>", "eos_token": "</s>"}
        cp = os.path.join(TMP, "feature_%d.json" % i)
        with open(cp, "w", encoding="utf-8") as f:
            json.dump(cfg, f, ensure_ascii=False)
        for agp in (False, True):
            expect = oracle.render(src, MSGS, add_generation_prompt=agp, specials=specials, now=NOW)
            rc, out, err = run_ringlm(cp, MSGS, None, agp)
            compare("feature %d (agp=%s): %r" % (i, agp, src[:80]), expect, rc, out, err)


def test_cli():
    # OpenAI request body with chat_template_kwargs; --var overrides it
    cp = os.path.join(TMP, "cli.json")
    src = "{{ messages | length }}{{ tools | length }}{{ enable_thinking }}{{ x }}"
    with open(cp, "w") as f:
        json.dump({"chat_template": src}, f)
    rc, out, err = run_ringlm(cp, [{"role": "user", "content": "q"}], TOOLS, False, {"x": "v"},
                              body_extra={"chat_template_kwargs": {"enable_thinking": False, "x": "ignored"}})
    check(rc == 0 and out == b"12Falsev", "request body + chat_template_kwargs", "%r %s" % (out, err))
    # a list of named templates: tool_use when tools are given
    with open(cp, "w") as f:
        json.dump({"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]}, f)
    rc, out, _ = run_ringlm(cp, [], None)
    check(rc == 0 and out == b"D", "named templates: default")
    rc, out, _ = run_ringlm(cp, [], TOOLS)
    check(rc == 0 and out == b"T", "named templates: tool_use")
    # errors name line and column
    with open(cp, "w") as f:
        json.dump({"chat_template": "line one\n{{ 1 +\n 2 }} ok\n{{ foo.bar }}"}, f)
    rc, out, err = run_ringlm(cp, [], None)
    check(rc != 0 and "line 4, column" in err and "'foo' is undefined" in err, "runtime error position", err)
    with open(cp, "w") as f:
        json.dump({"chat_template": "ab\n  {% if x %}\n{% endfor %}"}, f)
    rc, out, err = run_ringlm(cp, [], None)
    check(rc != 0 and "line 3, column" in err, "parse error position", err)
    # an endless loop is stopped by the step budget
    with open(cp, "w") as f:
        json.dump({"chat_template": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"}, f)
    rc, out, err = run_ringlm(cp, [], None)
    check(rc != 0 and "step budget" in err, "step budget", err)
    with open(cp, "w") as f:
        json.dump({"chat_template": "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}"}, f)
    rc, out, err = run_ringlm(cp, [], None)
    check(rc != 0 and "deeper than" in err, "depth budget", err)


if __name__ == "__main__":
    print("oracle: Jinja2", __import__("jinja2").__version__)
    test_features()
    test_cli()
    test_real_templates()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
