/* ringlm template: renders a chat template exactly as transformers'
 * apply_chat_template(tokenize=False) does, and prints it unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/app.h"
#include "tokenizer/template.h"

static const char *usage =
    "usage: ringlm template --tokenizer-config FILE --messages FILE.json [--add-generation-prompt]\n"
    "                       [--var NAME=VALUE ...] [--now UNIX_SECONDS] [--template-name NAME]\n"
    "  --tokenizer-config FILE  tokenizer_config.json (or any JSON with \"chat_template\"), a\n"
    "                           .jinja file, or a checkpoint directory\n"
    "  --messages FILE.json     a JSON array of messages, or an OpenAI chat request body\n"
    "                           (its messages, tools and chat_template_kwargs are used)\n"
    "  --var NAME=VALUE         an extra template variable; VALUE is parsed as JSON when it\n"
    "                           is valid JSON (true, 3, {\"a\":1}), else taken as a string\n"
    "  --now UNIX_SECONDS       pins strftime_now's clock (UTC); default: local time now\n"
    "  --template-name NAME     a named template of a list-form chat_template\n"
    "Prints the rendered prompt with no newline added.\n";

int cmd_template(int argc, char **argv) {
    const char *cfg_path = NULL, *msg_path = NULL, *tname = NULL;
    bool agp = false;
    long long now = -1;
    json_t *extra = json_object();
    int ret = 1;
    rl_chat_template *t = NULL;
    json_t *body = NULL;
    char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(usage, stdout); ret = 0; goto done; }
        else if (!strcmp(a, "--add-generation-prompt")) agp = true;
        else if (!strcmp(a, "--tokenizer-config") && has_val) cfg_path = argv[++i];
        else if (!strcmp(a, "--messages") && has_val) msg_path = argv[++i];
        else if (!strcmp(a, "--template-name") && has_val) tname = argv[++i];
        else if (!strcmp(a, "--now") && has_val) {
            char *end;
            now = strtoll(argv[++i], &end, 10);
            if (*end || now < 0) { app_fail("--now: '%s' is not a non-negative number of seconds", argv[i]); goto done; }
        } else if (!strcmp(a, "--var") && has_val) {
            const char *kv = argv[++i], *eq = strchr(kv, '=');
            if (!eq || eq == kv) { app_fail("--var: expected NAME=VALUE, got '%s'", kv); goto done; }
            char name[256];
            size_t nl = (size_t)(eq - kv);
            if (nl >= sizeof name) { app_fail("--var: name too long"); goto done; }
            memcpy(name, kv, nl);
            name[nl] = 0;
            json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
            if (!v) v = json_string(eq + 1);
            json_object_set_new(extra, name, v);
        } else {
            app_fail("template: unknown or incomplete option '%s'\n%s", a, usage);
            goto done;
        }
    }
    if (!cfg_path || !msg_path) { app_fail("template: --tokenizer-config and --messages are required\n%s", usage); goto done; }
    rl_err err = {0};
    size_t cl = strlen(cfg_path);
    int rc;
    if (cl > 5 && !strcmp(cfg_path + cl - 5, ".json")) rc = rl_chat_template_load(cfg_path, &t, &err);
    else if (cl > 6 && !strcmp(cfg_path + cl - 6, ".jinja")) rc = rl_chat_template_load(cfg_path, &t, &err);
    else {
        FILE *f = fopen(cfg_path, "rb");
        bool is_file = false;
        if (f) { char c; is_file = fread(&c, 1, 1, f) == 1; fclose(f); }
        rc = is_file ? rl_chat_template_load(cfg_path, &t, &err) : rl_chat_template_load_dir(cfg_path, &t, &err);
    }
    if (rc) { app_fail("%s", err.msg); goto done; }
    json_error_t je;
    body = json_load_file(msg_path, JSON_DECODE_ANY, &je);
    if (!body) { app_fail("%s: line %d, column %d: %s", msg_path, je.line, je.column, je.text); goto done; }
    const json_t *messages = body, *tools = NULL;
    if (json_is_object(body)) {
        messages = json_object_get(body, "messages");
        if (!json_is_array(messages)) { app_fail("%s: request body has no \"messages\" array", msg_path); goto done; }
        tools = json_object_get(body, "tools");
        if (tools && json_is_null(tools)) tools = NULL;
        if (tools && !json_is_array(tools)) { app_fail("%s: \"tools\" must be an array", msg_path); goto done; }
        const json_t *kw = json_object_get(body, "chat_template_kwargs");
        if (json_is_object(kw)) {
            json_t *merged = json_deep_copy(kw);
            json_object_update(merged, extra); /* --var wins */
            json_decref(extra);
            extra = merged;
        }
    } else if (!json_is_array(body)) {
        app_fail("%s: expected a JSON array of messages or a chat request object", msg_path);
        goto done;
    }
    rl_chat_opts o = {0};
    o.add_generation_prompt = agp;
    o.tools = tools;
    o.extra = extra;
    o.name = tname;
    o.now = now;
    size_t len;
    if (rl_chat_template_apply(t, messages, &o, &out, &len, &err)) { app_fail("template: %s", err.msg); goto done; }
    if (fwrite(out, 1, len, stdout) != len || fflush(stdout)) { app_fail("template: write failed"); goto done; }
    ret = 0;
done:
    free(out);
    json_decref(body);
    json_decref(extra);
    rl_chat_template_free(t);
    return ret;
}
