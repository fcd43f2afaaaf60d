/* ringlm mkmodel: a random-weight checkpoint of any config. */
#include <stdlib.h>
#include <string.h>

#include "apps/app.h"
#include "format/checkpoint.h"
#include "model/mkmodel.h"

int cmd_mkmodel(int argc, char **argv) {
    const char *preset = NULL, *cfg_path = NULL, *out = NULL;
    rl_mkmodel_opts o = {.seed = 0, .shards = 1, .dtype = RL_BF16, .router_dtype = RL_F32};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: ringlm mkmodel (--preset NAME | --config FILE) -o DIR [options]\n"
                   "Writes a random-weight checkpoint in the Hugging Face layout.\n"
                   "  --preset NAME        %s\n"
                   "  --config FILE        a config.json\n"
                   "  -o, --out DIR        output directory\n"
                   "  --seed S             random seed (default 0); weights depend only on the\n"
                   "                       seed and the tensor name\n"
                   "  --shards N           number of safetensors shards (default 1)\n"
                   "  --dtype T            matrices: bf16 (default), f16, f32, f8 (E4M3 with\n"
                   "                       128x128 block scales)\n"
                   "  --router-dtype T     router weight: f32 (default) or bf16\n"
                   "  --byte-tokenizer     also write a byte-level tokenizer.json with the Ring\n"
                   "                       special tokens and a Ring-format chat template\n",
                   rl_config_preset_names());
            return 0;
        }
        if (!strcmp(a, "--byte-tokenizer")) {
            o.byte_tokenizer = true;
            continue;
        }
        if (!v) return app_fail("mkmodel: option '%s' is unknown or needs a value", a);
        if (!strcmp(a, "--preset")) preset = v;
        else if (!strcmp(a, "--config")) cfg_path = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--seed")) {
            char *end;
            o.seed = strtoull(v, &end, 10);
            if (*end || end == v) return app_fail("--seed needs a non-negative integer");
        } else if (!strcmp(a, "--shards")) {
            if (!app_int(a, v, 1, 9999, &o.shards)) return 1;
        } else if (!strcmp(a, "--dtype") || !strcmp(a, "--router-dtype")) {
            rl_dtype d;
            if (!strcmp(v, "bf16")) d = RL_BF16;
            else if (!strcmp(v, "f16")) d = RL_F16;
            else if (!strcmp(v, "f32")) d = RL_F32;
            else if (!strcmp(v, "f8")) d = RL_F8_E4M3;
            else return app_fail("%s: unknown dtype '%s' (bf16, f16, f32, f8)", a, v);
            if (a[2] == 'r') {
                if (d != RL_F32 && d != RL_BF16) return app_fail("--router-dtype must be f32 or bf16");
                o.router_dtype = d;
            } else {
                o.dtype = d;
            }
        } else return app_fail("mkmodel: unknown option '%s'", a);
        i++;
    }
    if (!out) return app_fail("mkmodel needs -o DIR");
    if (!preset == !cfg_path) return app_fail("mkmodel needs exactly one of --preset or --config");
    rl_config c;
    rl_err e = {0};
    if (preset) {
        if (rl_config_preset(preset, &c, &e)) return app_fail("%s", e.msg);
    } else {
        char *txt;
        size_t len;
        if (rl_read_file(cfg_path, &txt, &len, &e)) return app_fail("%s", e.msg);
        int rc = rl_config_parse(txt, cfg_path, &c, &e);
        free(txt);
        if (rc) return app_fail("%s", e.msg);
    }
    c.router_fp32 = o.router_dtype == RL_F32;
    o.progress = app_progress_bytes;
    o.progress_ctx = (void *)"writing";
    if (rl_mkmodel(&c, out, &o, &e)) return app_fail("%s", e.msg);
    return 0;
}
