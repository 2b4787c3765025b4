// Crash points of checkpoint writing, armed by a fault drill (see crash_point.h).
#include "core/crash_point.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>

static mv_crash_stage g_stage = MV_CRASH_NONE;
static char g_file[256];
static char g_what[128];

void crash_point_arm(mv_crash_stage stage, const char *file, const char *what) {
    g_stage = file ? stage : MV_CRASH_NONE;
    snprintf(g_file, sizeof g_file, "%s", file ? file : "");
    snprintf(g_what, sizeof g_what, "%s", what ? what : "");
}

void crash_point(mv_crash_stage stage, const char *path) {
    if (g_stage == MV_CRASH_NONE || stage != g_stage) return;
    const char *slash = strrchr(path, '/');
    if (strcmp(slash ? slash + 1 : path, g_file) != 0) return;
    g_stage = MV_CRASH_NONE;
    fprintf(stderr, "maskvim: fault drill (MV_FAULT=%s): killing this process (SIGKILL)\n", g_what);
    fflush(stderr);
    fflush(stdout);
    raise(SIGKILL);
}
