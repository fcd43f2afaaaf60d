/* ringlm: the command-line entry point. */
#include <stdio.h>
#include <string.h>

#include "apps/app.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} cmds[] = {
    {"generate", cmd_generate, "generate text (or tokens) from a prompt"},
    {"chat", cmd_chat, "talk with a model through its chat template"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server with continuous batching"},
    {"logits", cmd_logits, "write the raw logits of a token sequence"},
    {"info", cmd_info, "describe a checkpoint: schedule, parameters, memory"},
    {"bench", cmd_bench, "prefill and decode speed against the bandwidth floor"},
    {"mkmodel", cmd_mkmodel, "write a random-weight checkpoint of a preset or config"},
    {"tokenize", cmd_tokenize, "text to token ids with a tokenizer.json"},
    {"detokenize", cmd_detokenize, "token ids to text with a tokenizer.json"},
    {"template", cmd_template, "render a chat template (tokenizer_config.json) for messages"},
    {"grad", cmd_grad, "write the loss gradient of a token sequence (safetensors)"},
    {"score", cmd_score, "write the log-prob of each next token (the trainer's forward)"},
    {"tokenizer-train", cmd_tokenizer_train, "learn a byte-level BPE tokenizer.json from text"},
    {"prepare-data", cmd_prepare_data, "tokenize text files into a token file for training"},
    {"train", cmd_train, "train a model (AdamW, warmup + cosine) on a token file"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: ringlm <command> [options]   (ringlm <command> --help for each)\n\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-16s %s\n", cmds[i].name, cmds[i].what);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ringlm: error: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 1;
}
