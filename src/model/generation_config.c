#include "model/generation_config.h"

#include <jansson.h>
#include <stdio.h>

static void add(int32_t *ids, int *n, int cap, json_int_t id) {
    if (id < 0 || id > INT32_MAX || *n >= cap) return;
    for (int i = 0; i < *n; i++)
        if (ids[i] == (int32_t)id) return;
    ids[(*n)++] = (int32_t)id;
}

void rl_generation_config_eos(const char *dir, int32_t *ids, int *n, int cap) {
    char path[4096];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    json_t *g = json_load_file(path, 0, NULL);
    if (!g) return;
    json_t *v = json_object_get(g, "eos_token_id");
    if (json_is_integer(v)) add(ids, n, cap, json_integer_value(v));
    size_t i;
    json_t *x;
    if (json_is_array(v)) json_array_foreach(v, i, x) if (json_is_integer(x)) add(ids, n, cap, json_integer_value(x));
    json_decref(g);
}
