// maskvim: the command-line entry point; dispatches to the subcommands of launch/cmd_*.c.
#include <stdio.h>
#include <string.h>
#include <hdf5.h>
#include "launch/commands.h"
#include "core/build_info.h"
#include "core/suggest.h"
#include "kernels/cpu/blas_kernel.h"
#if defined(MV_HAVE_GPU_MODEL) || defined(MV_GPU_PLUGIN)
#include "core/engine.h"
#endif

static const mv_command COMMANDS[] = {
    {"train", cmd_train, "train a model from a YAML experiment (mpirun for several ranks)"},
    {"eval", cmd_eval, "evaluate a checkpoint per domain (and under Cityscapes-C corruptions)"},
    {"predict", cmd_predict, "colour-coded predictions (and learnt token masks) for image files"},
    {"step", cmd_step, "one forward+backward on a batch file; dumps losses, logits, gradients"},
    {"bench", cmd_bench, "time the training step per op (ms, GFLOP/s, share of the sgemm peak)"},
    {"data", cmd_data, "datasets: convert, synth, corrupt, inspect, bench-loader"},
    {"config", cmd_config, "the resolved configuration (includes, --set), or every key explained (--keys)"},
    {"bench-allreduce", cmd_bench_allreduce, "all-reduce benchmark (nccl-tests style): time, algbw, busbw, --check"},
    {"report", cmd_report, "Markdown, CSV, JSON and HTML report of run directories (ours vs the paper)"},
    {"experiment", cmd_experiment, "run the rows of an experiment file (a paper table): resumable sweeps"},
};
static const int NUM_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0];

static void usage(FILE *f) {
    fprintf(f, "usage: maskvim COMMAND [options]   (maskvim COMMAND --help for details)\n"
               "       maskvim --version            (version, commit, compiler, libraries, GPU)\n\ncommands:\n");
    for (int i = 0; i < NUM_COMMANDS; i++) fprintf(f, "  %-16s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

int main(int argc, char **argv) {
    // HDF5 closes whatever is still open when the process exits. A file whose H5Fclose failed
    // (a disk that filled up while a checkpoint or shard was written) stays registered in a
    // half-torn-down state, and closing it again at exit crashed (SIGSEGV in H5F__close_cb)
    // after the error had been reported. Every file is closed explicitly, so skip that pass.
    H5dont_atexit();
    blas_kernel_check(argv);   // first: it may start the process again
#ifdef MV_HAVE_GPU_MODEL
    mv_gpu_engine = mv_cuda_engine();   // run.device: cuda (or auto where a GPU is present)
#elif defined(MV_GPU_PLUGIN)
    mv_gpu_plugin = MV_GPU_PLUGIN;      // the same, loaded from beside this executable when first needed
#endif
    // `maskvim help COMMAND [SUBCOMMAND]` is `maskvim COMMAND [SUBCOMMAND] --help`.
    if ((argc == 3 || argc == 4) && !strcmp(argv[1], "help")) {
        for (int i = 0; i < NUM_COMMANDS; i++)
            if (!strcmp(argv[2], COMMANDS[i].name))
                return argc == 3 ? COMMANDS[i].run(2, (char *[]){argv[2], "--help", NULL})
                                 : COMMANDS[i].run(3, (char *[]){argv[2], argv[3], "--help", NULL});
        argv++;   // `help nosuch`: nosuch is the unknown command below
        argc--;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        mv_build_report(stdout);
        return 0;
    }
    for (int i = 0; i < NUM_COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    const char *names[sizeof COMMANDS / sizeof COMMANDS[0]];
    for (int i = 0; i < NUM_COMMANDS; i++) names[i] = COMMANDS[i].name;
    char hint[64];
    fprintf(stderr, "maskvim: unknown command '%s'%s\n\n", argv[1],
            mv_hint(hint, sizeof hint, argv[1], names, NUM_COMMANDS));
    usage(stderr);
    return 2;
}
