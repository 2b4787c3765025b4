// The `maskvim` subcommands: each is `int cmd_NAME(int argc, char **argv)` returning the
// process exit status, with argv[0] the subcommand name.
#pragma once

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
