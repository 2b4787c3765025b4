// Folder creation and listing, lock files, atomic file writes and the free-space check (see fs.h).
#include "core/fs.h"
#include "core/error.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int mv_mkdir_p(const char *path) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s", path) >= sizeof tmp) return mv_fail("%s: path too long", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return mv_fail("%s: cannot create folder: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return mv_fail("%s: cannot create folder: %s", tmp, strerror(errno));
    return 0;
}

int mv_lock_file(const char *path, const char *waiting) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return mv_fail("%s: cannot open: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
    if (errno != EWOULDBLOCK) {
        int e = errno;
        close(fd);
        return mv_fail("%s: cannot lock: %s", path, strerror(e));
    }
    if (waiting) {
        fprintf(stderr, "%s\n", waiting);
        fflush(stderr);
    }
    if (flock(fd, LOCK_EX) == 0) return fd;
    int e = errno;
    close(fd);
    return e == EINTR ? mv_fail("%s: interrupted while waiting for the lock", path)
                      : mv_fail("%s: cannot lock: %s", path, strerror(e));
}

int mv_check_output_file(const char *path) {
    if (!path[0]) return mv_fail("an empty path is not a file to write");
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode)) return 0;
    const char *what = S_ISDIR(st.st_mode) ? "a folder" : S_ISFIFO(st.st_mode) ? "a pipe" : S_ISSOCK(st.st_mode) ? "a socket"
                     : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "not a regular file";
    return mv_fail("%s: is %s, not a file to write (give the path of a file)", path, what);
}

void mv_dir_of(char *dir, size_t cap, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, cap, ".");
    else if (slash == path) snprintf(dir, cap, "/");
    else snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

void mv_sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

int mv_check_free_space(const char *dir, double need, const char *what, const char *for_what) {
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) return 0;
    double avail = (double)vfs.f_bavail * (double)vfs.f_frsize;   // what an unprivileged writer may use
    if (avail >= need) return 0;
    // As many decimals as it takes for the two figures to read differently (0.1 MB needed, 0.1
    // MB free would say nothing).
    int digits = 1;
    char a[64], b[64];
    do {
        snprintf(a, sizeof a, "%.*f", digits, need / 1e6);
        snprintf(b, sizeof b, "%.*f", digits, avail / 1e6);
    } while (!strcmp(a, b) && ++digits < 7);
    return mv_fail("%s: not enough free space for %s (about %s MB needed, %s MB free in %s)", what, for_what, a, b,
                   dir);
}

bool mv_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int list_dir(char ***names, int64_t *n, const char *dir, const char *suffix, bool any_case) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return mv_fail("%s: cannot list folder: %s", dir, strerror(errno));
    int64_t cap = 0;
    size_t sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < sl) continue;
        if (any_case ? strcasecmp(e->d_name + l - sl, suffix) : strcmp(e->d_name + l - sl, suffix)) continue;
        if (sl && e->d_type == DT_DIR) continue;   // a folder named like a file (x.jpg/) is not one
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            *names = mv_realloc(*names, sizeof(char *) * (size_t)cap);
        }
        (*names)[(*n)++] = mv_strdup(e->d_name);
    }
    closedir(d);
    if (*n) qsort(*names, (size_t)*n, sizeof(char *), cmp_str);
    return 0;
}

int mv_list_dir(char ***names, int64_t *n, const char *dir, const char *suffix) {
    return list_dir(names, n, dir, suffix, false);
}

int mv_list_dir_any_case(char ***names, int64_t *n, const char *dir, const char *suffix) {
    return list_dir(names, n, dir, suffix, true);
}

void mv_free_names(char **names, int64_t n) {
    for (int64_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

char *mv_read_text_file(const char *path, bool quiet_missing) {
    FILE *f = fopen(path, "rb");
    if (!f) { if (!quiet_missing || errno != ENOENT) mv_fail("%s: %s", path, strerror(errno)); return NULL; }
    size_t cap = 4096, n = 0;
    char *b = mv_malloc(cap);
    size_t got;
    while ((got = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) { cap *= 2; b = mv_realloc(b, cap); }
    }
    b[n] = 0;
    fclose(f);
    return b;
}

// The pid of a temporary `base`.tmp.<pid>, or 0 when `name` is not one.
// kill(pid, 0) fails with ESRCH only when no such process exists (EPERM: it exists).
static bool pid_alive(long pid) { return kill((pid_t)pid, 0) == 0 || errno != ESRCH; }

long mv_stale_tmp(const char *name, char *base, size_t cap) {
    const char *tmp = NULL;
    for (const char *p = strstr(name, ".tmp."); p; p = strstr(p + 1, ".tmp.")) tmp = p;
    if (!tmp || tmp == name || (size_t)(tmp - name) >= cap) return 0;
    const char *digits = tmp + 5;
    if (*digits < '1' || *digits > '9') return 0;
    char *end;
    errno = 0;
    long pid = strtol(digits, &end, 10);
    if (*end || errno || pid <= 0 || pid != (long)(pid_t)pid || pid == (long)getpid() || pid_alive(pid)) return 0;
    memcpy(base, name, (size_t)(tmp - name));
    base[tmp - name] = '\0';
    return pid;
}

// The stale temporaries of a folder, listed once per process: a writer of many files into one
// folder (`maskvim predict`'s output) listed the whole folder for every file it wrote, a cost
// quadratic in the folder's size. What a process killed after the listing leaves is found by
// the next process that writes there. Up to MAX_LISTED folders are remembered; others are
// listed at every write.
#define MAX_LISTED 16
typedef struct {
    char dir[4096];
    char **names;   // stale temporaries not yet removed
    int n;
} stale_listing;
static stale_listing g_listed[MAX_LISTED];
static int g_nlisted;
static pthread_mutex_t g_listed_lock = PTHREAD_MUTEX_INITIALIZER;

// Lists dir's stale temporaries into *l (l->dir set by the caller); false if dir cannot be read.
static bool list_stale(stale_listing *l) {
    DIR *d = opendir(l->dir);
    if (!d) return false;
    int cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char owner[256];
        if (!mv_stale_tmp(e->d_name, owner, sizeof owner)) continue;
        if (l->n == cap) l->names = mv_realloc(l->names, (size_t)(cap = cap ? 2 * cap : 8) * sizeof *l->names);
        l->names[l->n++] = mv_strdup(e->d_name);
    }
    closedir(d);
    return true;
}

// Unlinks the listed temporaries of `base` and drops them from the list; how many.
static int remove_listed(stale_listing *l, const char *base) {
    int removed = 0;
    for (int i = 0; i < l->n;) {
        char owner[256], stale[8192];
        if (!mv_stale_tmp(l->names[i], owner, sizeof owner) || strcmp(owner, base)) { i++; continue; }
        if ((size_t)snprintf(stale, sizeof stale, "%s/%s", l->dir, l->names[i]) < sizeof stale && unlink(stale) == 0)
            removed++;
        free(l->names[i]);
        l->names[i] = l->names[--l->n];
    }
    return removed;
}

int mv_remove_stale_tmp(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!base[0] || strlen(path) >= sizeof g_listed[0].dir) return 0;
    pthread_mutex_lock(&g_listed_lock);
    stale_listing once = {0}, *l = NULL;
    mv_dir_of(once.dir, sizeof once.dir, path);
    for (int i = 0; i < g_nlisted && !l; i++)
        if (!strcmp(g_listed[i].dir, once.dir)) l = &g_listed[i];
    if (!l) {
        l = g_nlisted < MAX_LISTED ? &g_listed[g_nlisted] : &once;
        memcpy(l->dir, once.dir, sizeof l->dir);
        if (!list_stale(l)) l = NULL;
        else if (l != &once) g_nlisted++;
    }
    int removed = l ? remove_listed(l, base) : 0;
    for (int i = 0; i < once.n; i++) free(once.names[i]);
    free(once.names);
    pthread_mutex_unlock(&g_listed_lock);
    return removed;
}

int mv_atomic_open(mv_atomic_file *a, const char *path) {
    a->f = NULL;
    a->tmp[0] = 0;
    if ((size_t)snprintf(a->path, sizeof a->path, "%s", path) >= sizeof a->path)
        return mv_fail("%.200s...: path too long", path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    // Else fopen would fail with "File name too long" on a temporary name the user never gave.
    if (strlen(base) > MV_ATOMIC_NAME_MAX)
        return mv_fail("%s: the file name is %zu bytes; the longest written is %d (a file system's 255 less the "
                       "\".tmp.<pid>\" of the temporary it is first written as)", path, strlen(base), MV_ATOMIC_NAME_MAX);
    MV_TRY(mv_check_output_file(path));
    mv_remove_stale_tmp(path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid());
    if (!(a->f = fopen(a->tmp, "wb"))) {
        int rc = mv_fail("%s: cannot create %s: %s", path, a->tmp, strerror(errno));
        a->tmp[0] = 0;
        return rc;
    }
    return 0;
}

int mv_atomic_commit(mv_atomic_file *a, bool sync) {
    if (!a->f) return mv_fail("%s: not open for writing", a->path);
    int e = ferror(a->f) ? (errno ? errno : EIO) : 0;
    if (fflush(a->f) != 0 && !e) e = errno ? errno : EIO;
    if (sync && !e && fsync(fileno(a->f)) != 0) e = errno ? errno : EIO;
    if (fclose(a->f) != 0 && !e) e = errno ? errno : EIO;
    a->f = NULL;
    if (!e && rename(a->tmp, a->path) != 0) e = errno;
    if (e) {
        remove(a->tmp);
        a->tmp[0] = 0;
        return mv_fail("%s: cannot write: %s", a->path, strerror(e));
    }
    a->tmp[0] = 0;
    if (sync) {   // the rename itself survives a crash only once the folder is synced
        char dir[4096];
        mv_dir_of(dir, sizeof dir, a->path);
        mv_sync_dir(dir);
    }
    return 0;
}

void mv_atomic_abort(mv_atomic_file *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp[0]) remove(a->tmp);
    a->tmp[0] = 0;
}
