/* geex-exec: the sandbox's small native helper (built once per machine by geex, see sandbox.py).
 *
 *   geex-exec [--cgroup FILE]... [--status-fd N] [--rlimit NAME=SOFT:HARD]... [--drop UID]
 *             -- PROGRAM ARG...
 *
 * --cgroup FILE   write "0" (this process) into a cgroup's cgroup.procs before anything else runs,
 *                 so that bubblewrap and every process of the sample are counted by that cgroup
 *                 (memory incl. memfd/shm/page cache, processes). Fails hard if the write fails:
 *                 a limit the harness believes in must be in force.
 * --status-fd N   run PROGRAM as a child, wait for it and write its real wait status to fd N as one
 *                 line, "exit CODE" or "signal NUMBER" (bubblewrap itself reports a child killed by
 *                 signal N as exit status 128 + N, so a program exiting with 137 on purpose would be
 *                 read as killed). The fd is close-on-exec: PROGRAM cannot write to it. Then exits
 *                 the way the child did (same code; 128 + N for a signal).
 * --rlimit NAME=SOFT:HARD   set a resource limit of PROGRAM (NAME: as, cpu, fsize, nofile, nproc,
 *                 core; values in the kernel's units), like prlimit(1).
 * --drop UID      run PROGRAM as UID and gid UID with no supplementary groups, no capability in
 *                 any set (bounding and ambient included) and no_new_privs, like setpriv(1) with
 *                 --reuid --regid --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all
 *                 (one exec instead of three: each costs a millisecond a run); checked afterwards
 *                 from the kernel's own view, and fatal if anything is left.
 * Limits and the drop apply to PROGRAM only: with --status-fd the waiting parent keeps neither.
 * Without --status-fd it sets them up and execs PROGRAM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_LIMITS 16
static struct { int resource; struct rlimit value; } limits[MAX_LIMITS];
static int n_limits = 0;
static long drop_uid = -1;

static void die(const char *what, const char *arg) {
    dprintf(2, "geex-exec: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
    _exit(125);
}

static void join_cgroup(const char *procs) {
    int fd = open(procs, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) die("cannot open", procs);
    if (write(fd, "0", 1) != 1) die("cannot join cgroup", procs);
    close(fd);
}

static void add_limit(const char *spec) {
    static const struct { const char *name; int resource; } names[] = {
        {"as", RLIMIT_AS}, {"cpu", RLIMIT_CPU}, {"fsize", RLIMIT_FSIZE}, {"nofile", RLIMIT_NOFILE},
        {"nproc", RLIMIT_NPROC}, {"core", RLIMIT_CORE},
    };
    const char *eq = strchr(spec, '=');
    char *end;
    if (eq == NULL || n_limits == MAX_LIMITS) { errno = EINVAL; die("bad --rlimit", spec); }
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        if (strlen(names[k].name) == (size_t)(eq - spec) && strncmp(names[k].name, spec, eq - spec) == 0) {
            unsigned long long soft = strtoull(eq + 1, &end, 10), hard = soft;
            if (*end == ':') hard = strtoull(end + 1, &end, 10);
            if (*end != '\0' || end == eq + 1) { errno = EINVAL; die("bad --rlimit", spec); }
            limits[n_limits].resource = names[k].resource;
            limits[n_limits].value.rlim_cur = soft;
            limits[n_limits].value.rlim_max = hard;
            n_limits++;
            return;
        }
    }
    errno = EINVAL;
    die("unknown --rlimit", spec);
}

/* In PROGRAM's process, before exec: its limits, then the privilege drop, then a check. */
static void limit_and_drop(void) {
    for (int k = 0; k < n_limits; k++)
        if (setrlimit(limits[k].resource, &limits[k].value) < 0) die("setrlimit", NULL);
    if (drop_uid < 0) return;
    uid_t uid = (uid_t)drop_uid;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs", NULL);
    for (int cap = 0; cap < 64; cap++)  /* past the last capability the kernel says EINVAL */
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) die("dropping the bounding set", NULL);
    if (setgroups(0, NULL) < 0) die("setgroups", NULL);
    if (setresgid(uid, uid, uid) < 0) die("setresgid", NULL);
    if (setresuid(uid, uid, uid) < 0) die("setresuid", NULL);  /* clears permitted/effective/ambient */
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) < 0) die("capset", NULL);  /* the inheritable set */
    /* the kernel's view, not our intentions */
    uid_t r, e, sv;
    gid_t gr, ge, gs;
    if (getresuid(&r, &e, &sv) < 0 || r != uid || e != uid || sv != uid) { errno = EPERM; die("uid still", "privileged"); }
    if (getresgid(&gr, &ge, &gs) < 0 || gr != uid || ge != uid || gs != uid) { errno = EPERM; die("gid still", "privileged"); }
    if (getgroups(0, NULL) != 0) { errno = EPERM; die("supplementary groups", "left"); }
    if (syscall(SYS_capget, &header, data) < 0) die("capget", NULL);
    for (int k = 0; k < 2; k++)
        if (data[k].effective || data[k].permitted || data[k].inheritable) { errno = EPERM; die("capabilities", "left"); }
    for (int cap = 0; cap < 64; cap++)
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) > 0) { errno = EPERM; die("bounding set", "left"); }
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) { errno = EPERM; die("no_new_privs", "unset"); }
}

int main(int argc, char **argv) {
    int status_fd = -1;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) { i++; break; }
        if (strcmp(argv[i], "--cgroup") == 0 && i + 1 < argc) { join_cgroup(argv[++i]); continue; }
        if (strcmp(argv[i], "--status-fd") == 0 && i + 1 < argc) { status_fd = atoi(argv[++i]); continue; }
        if (strcmp(argv[i], "--rlimit") == 0 && i + 1 < argc) { add_limit(argv[++i]); continue; }
        if (strcmp(argv[i], "--drop") == 0 && i + 1 < argc) {
            char *end;
            drop_uid = strtol(argv[++i], &end, 10);
            if (*end != '\0' || drop_uid <= 0) { errno = EINVAL; die("bad --drop", argv[i]); }
            continue;
        }
        dprintf(2, "geex-exec: unknown argument %s\n", argv[i]);
        return 125;
    }
    if (i >= argc) { dprintf(2, "geex-exec: no program\n"); return 125; }
    char **prog = argv + i;
    if (status_fd < 0) {
        limit_and_drop();
        execvp(prog[0], prog);
        die("cannot run", prog[0]);
    }
    if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) < 0) die("bad status fd", NULL);
    pid_t child = fork();
    if (child < 0) die("cannot fork", NULL);
    if (child == 0) {
        limit_and_drop();
        execvp(prog[0], prog);
        die("cannot run", prog[0]);
    }
    int status;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) die("waitpid", NULL);
    }
    if (WIFSIGNALED(status)) {
        dprintf(status_fd, "signal %d\n", WTERMSIG(status));
        close(status_fd);
        return 128 + WTERMSIG(status);
    }
    dprintf(status_fd, "exit %d\n", WEXITSTATUS(status));
    close(status_fd);
    return WEXITSTATUS(status);
}
