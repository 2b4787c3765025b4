// The `maskvim` subcommands: each is `int cmd_NAME(int argc, char **argv)` returning the
// process exit status, with argv[0] the subcommand name.
#pragma once
#include "core/cli_parse.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} mv_command;

int cmd_step(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_bench_allreduce(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_experiment(int argc, char **argv);

// "Did you mean" hints for messages (launch/cli_hint.c): "; did you mean '--resume'?" when arg
// (up to a '=') is close to an option that usage() prints, else "". Returns out.
const char *cli_option_hint(char *out, size_t cap, const char *arg, void (*usage)(FILE *));
// (A command or subcommand name among a list: mv_hint, core/suggest.h.)
// Prints "maskvim CMD: unknown option 'ARG'; did you mean '--x'?", a blank line and the usage to
// stderr.
void cli_unknown_option(const char *cmd, const char *arg, void (*usage)(FILE *));
// For an option given last, without its value: "maskvim CMD: ARG needs a value" when usage()
// lists ARG, else the unknown-option message above (a mistyped flag is not missing a value).
void cli_missing_value(const char *cmd, const char *arg, void (*usage)(FILE *));
// --preset NAME of `step` and `bench`: 0, or -1 after "maskvim CMD: --preset NAME: ..." (the
// known presets) on stderr.
int check_preset(const char *cmd, const char *name);
