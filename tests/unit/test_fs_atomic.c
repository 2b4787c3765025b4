// Files written whole or not at all (core/fs.h mv_atomic_*): the target changes only on commit,
// an abort or a failed write leaves it as it was, and no temporary stays behind.
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/error.h"
#include "core/fs.h"

static char *fresh_dir(const char *name) {
    char *dir = malloc(1024);
    const char *base = getenv("MV_TEST_TMP") ? getenv("MV_TEST_TMP") : "/tmp";
    snprintf(dir, 1024, "%s/fs_atomic_%s_%ld", base, name, (long)getpid());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(mv_mkdir_p(dir), 0, "%s", mv_last_error());
    return dir;
}

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void expect_content(const char *path, const char *want) {
    char *got = mv_read_text_file(path, false);
    cr_assert(got, "%s: %s", path, mv_last_error());
    cr_expect_str_eq(got, want, "%s", path);
    free(got);
}

// Files in `dir` besides `keep` (the temporaries an interrupted write would leave).
static int others(const char *dir, const char *keep) {
    char **names;
    int64_t n;
    cr_assert_eq(mv_list_dir(&names, &n, dir, ""), 0, "%s", mv_last_error());
    int count = 0;
    for (int64_t i = 0; i < n; i++) count += strcmp(names[i], keep) != 0;
    mv_free_names(names, n);
    return count;
}

Test(fs_atomic, commit_replaces_the_target_and_leaves_nothing_else) {
    char *dir = fresh_dir("commit"), path[1100];
    snprintf(path, sizeof path, "%s/out.json", dir);
    put(path, "old");
    mv_atomic_file a;
    cr_assert_eq(mv_atomic_open(&a, path), 0, "%s", mv_last_error());
    fputs("new", a.f);
    expect_content(path, "old");   // nothing visible before the commit
    cr_assert_eq(mv_atomic_commit(&a, true), 0, "%s", mv_last_error());
    expect_content(path, "new");
    cr_expect_eq(others(dir, "out.json"), 0, "a temporary stayed");
    free(dir);
}

Test(fs_atomic, abort_keeps_the_target_as_it_was) {
    char *dir = fresh_dir("abort"), path[1100];
    snprintf(path, sizeof path, "%s/out.json", dir);
    put(path, "old");
    mv_atomic_file a;
    cr_assert_eq(mv_atomic_open(&a, path), 0, "%s", mv_last_error());
    fputs("half", a.f);
    mv_atomic_abort(&a);
    expect_content(path, "old");
    cr_expect_eq(others(dir, "out.json"), 0, "a temporary stayed");
    mv_atomic_abort(&a);   // twice is harmless
    free(dir);
}

// A write that fails part-way (here the file size limit, as a full disk would) fails the commit,
// naming the target, and the target keeps its old contents.
Test(fs_atomic, failed_write_fails_the_commit) {
    char *dir = fresh_dir("efbig"), path[1100];
    snprintf(path, sizeof path, "%s/report.md", dir);
    put(path, "old");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);   // the write then fails with EFBIG instead of killing us
        struct rlimit lim = {4096, 4096};
        setrlimit(RLIMIT_FSIZE, &lim);
        mv_atomic_file a;
        if (mv_atomic_open(&a, path) < 0) _exit(2);
        for (int i = 0; i < 10000; i++) fputs("0123456789", a.f);
        int rc = mv_atomic_commit(&a, false);
        _exit(rc < 0 && strstr(mv_last_error(), "report.md: cannot write") ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the commit did not fail with the target's name (status %d)", st);
    expect_content(path, "old");
    cr_expect_eq(others(dir, "report.md"), 0, "a temporary stayed");
    free(dir);
}

Test(fs_atomic, open_refuses_a_folder_and_a_missing_parent) {
    char *dir = fresh_dir("refuse"), path[1100];
    mv_atomic_file a;
    cr_expect_eq(mv_atomic_open(&a, dir), -1);
    cr_expect(strstr(mv_last_error(), "is a folder"), "%s", mv_last_error());
    snprintf(path, sizeof path, "%s/missing/out.json", dir);
    cr_expect_eq(mv_atomic_open(&a, path), -1);
    cr_expect(strstr(mv_last_error(), "out.json: cannot create"), "%s", mv_last_error());
    mv_atomic_abort(&a);   // safe after a failed open
    free(dir);
}

// The temporary of a writer that died before its rename is removed by the next writer of the
// same file; a live writer's, and another file's, are not touched.
Test(fs_atomic, open_removes_dead_writers_temporaries_only) {
    char *dir = fresh_dir("stale"), path[1100], dead[1200], live[1200], other[1200];
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    snprintf(path, sizeof path, "%s/status.json", dir);
    snprintf(dead, sizeof dead, "%s.tmp.%ld", path, (long)child);
    snprintf(live, sizeof live, "%s.tmp.%ld", path, (long)getppid());
    snprintf(other, sizeof other, "%s/paper.json.tmp.%ld", dir, (long)child);
    put(dead, "partial");
    put(live, "partial");
    put(other, "partial");
    mv_atomic_file a;
    cr_assert_eq(mv_atomic_open(&a, path), 0, "%s", mv_last_error());
    fputs("{}", a.f);
    cr_assert_eq(mv_atomic_commit(&a, false), 0, "%s", mv_last_error());
    cr_expect(access(dead, F_OK) != 0, "the dead writer's temporary stayed");
    cr_expect(access(live, F_OK) == 0, "a live writer's temporary was removed");
    cr_expect(access(other, F_OK) == 0, "another file's temporary was removed");
    free(dir);
}

// The temporary's name is the target's plus ".tmp.<pid>": a target name that fits the file
// system's 255 bytes but not with that suffix is refused by its length, not failed by fopen
// as a "File name too long" naming a temporary the caller never gave; one byte less is written.
Test(fs_atomic, name_too_long_for_its_temporary_is_refused_by_length) {
    char *dir = fresh_dir("long"), path[1400], name[300];
    mv_atomic_file a;
    memset(name, 'n', MV_ATOMIC_NAME_MAX + 1);
    name[MV_ATOMIC_NAME_MAX + 1] = 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(mv_atomic_open(&a, path), -1);
    cr_assert(strstr(mv_last_error(), "the file name is 244 bytes; the longest written is 243"), "%s", mv_last_error());
    cr_assert_eq(others(dir, ""), 0, "a temporary was created");
    name[MV_ATOMIC_NAME_MAX] = 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(mv_atomic_open(&a, path), 0, "%s", mv_last_error());
    fputs("x", a.f);
    cr_assert_eq(mv_atomic_commit(&a, false), 0, "%s", mv_last_error());
    expect_content(path, "x");
    free(dir);
}
