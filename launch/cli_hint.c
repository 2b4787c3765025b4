// "Did you mean ...?" for the command line: the options a subcommand accepts are the ones its
// usage text lists, so the candidates are read from that text rather than kept in a second
// list that could drift from it (tests/scripts/test_launch_cli_args.sh checks that every
// listed option is accepted).
#include "launch/commands.h"
#include "core/error.h"
#include "core/model_config.h"
#include "core/suggest.h"
#include <stdlib.h>
#include <string.h>

#define MAX_OPTIONS 64
#define MAX_OPTION_LEN 40

// Every distinct `--name` in text, in order of appearance.
static int collect_options(char (*opts)[MAX_OPTION_LEN], const char *text) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, "--")) && n < MAX_OPTIONS;) {
        const char *e = p + 2;
        while ((*e >= 'a' && *e <= 'z') || (*e >= '0' && *e <= '9') || *e == '-') e++;
        size_t len = (size_t)(e - p);
        bool word = (p == text || !strchr("-abcdefghijklmnopqrstuvwxyz0123456789", p[-1])) && len > 2 &&
                    len < MAX_OPTION_LEN && p[2] != '-';
        bool dup = false;
        for (int i = 0; word && i < n && !dup; i++) dup = strlen(opts[i]) == len && !strncmp(opts[i], p, len);
        if (word && !dup) snprintf(opts[n++], MAX_OPTION_LEN, "%.*s", (int)len, p);
        p = e;
    }
    return n;
}

// The options usage() lists; -1 when its text cannot be captured.
static int usage_options(char (*opts)[MAX_OPTION_LEN], void (*usage)(FILE *)) {
    char *text = NULL;
    size_t len = 0;
    FILE *ms = open_memstream(&text, &len);
    if (!ms) return -1;
    usage(ms);
    fclose(ms);
    int n = collect_options(opts, text);
    free(text);
    return n;
}

const char *cli_option_hint(char *out, size_t cap, const char *arg, void (*usage)(FILE *)) {
    out[0] = '\0';
    char opts[MAX_OPTIONS][MAX_OPTION_LEN];
    const char *ptrs[MAX_OPTIONS];
    int n = usage_options(opts, usage);
    for (int i = 0; i < n; i++) ptrs[i] = opts[i];
    // `--resum=auto` is compared as `--resum`.
    char word[MAX_OPTION_LEN];
    snprintf(word, sizeof word, "%.*s", (int)strcspn(arg, "="), arg);
    return mv_hint(out, cap, word, ptrs, n);
}

// True when usage() lists `arg` as an option. No command takes `--option=value`, so an
// argument with a '=' is never one (`--set=k=v` last is unknown, as it is anywhere else).
static bool option_listed(const char *arg, void (*usage)(FILE *)) {
    if (strchr(arg, '=')) return false;
    char opts[MAX_OPTIONS][MAX_OPTION_LEN];
    int n = usage_options(opts, usage);
    if (n < 0) return true;   // cannot tell: keep the caller's own message
    for (int i = 0; i < n; i++)
        if (!strcmp(opts[i], arg)) return true;
    return false;
}

void cli_unknown_option(const char *cmd, const char *arg, void (*usage)(FILE *)) {
    char hint[MAX_OPTION_LEN + 32];
    fprintf(stderr, "maskvim %s: unknown option '%s'%s\n\n", cmd, arg, cli_option_hint(hint, sizeof hint, arg, usage));
    usage(stderr);
}

void cli_missing_value(const char *cmd, const char *arg, void (*usage)(FILE *)) {
    if (option_listed(arg, usage)) fprintf(stderr, "maskvim %s: %s needs a value\n", cmd, arg);
    else cli_unknown_option(cmd, arg, usage);
}

int check_preset(const char *cmd, const char *name) {
    mv_model_config c;
    if (model_config_preset(&c, name) == 0) return 0;
    fprintf(stderr, "maskvim %s: --preset %s: %s\n", cmd, name, mv_last_error());
    return -1;
}
