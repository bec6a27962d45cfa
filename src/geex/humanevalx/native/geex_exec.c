/* geex-exec: the sandbox's small native helper (built once per machine by geex, see sandbox.py).
 *
 *   geex-exec [--cgroup FILE]... [--status-fd N] -- PROGRAM ARG...
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
 * Without --status-fd it simply execs PROGRAM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

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

int main(int argc, char **argv) {
    int status_fd = -1;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) { i++; break; }
        if (strcmp(argv[i], "--cgroup") == 0 && i + 1 < argc) { join_cgroup(argv[++i]); continue; }
        if (strcmp(argv[i], "--status-fd") == 0 && i + 1 < argc) { status_fd = atoi(argv[++i]); continue; }
        dprintf(2, "geex-exec: unknown argument %s\n", argv[i]);
        return 125;
    }
    if (i >= argc) { dprintf(2, "geex-exec: no program\n"); return 125; }
    char **prog = argv + i;
    if (status_fd < 0) {
        execvp(prog[0], prog);
        die("cannot run", prog[0]);
    }
    if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) < 0) die("bad status fd", NULL);
    pid_t child = fork();
    if (child < 0) die("cannot fork", NULL);
    if (child == 0) {
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
