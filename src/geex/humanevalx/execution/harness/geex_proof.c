/* geex's C++ test harness: linked *before* the program, with -Wl,--wrap=main.
 *
 * Prologue, program, epilogue (see geex/humanevalx/execution/proof.py): geex_read_secret is the first entry
 * of the executable's .preinit_array (this object comes first on the link line), so it runs before
 * every constructor of the program (__attribute__((constructor)) at any priority, static objects)
 * and reads the secret from stdin. The link sends the C runtime's call of main to __wrap_main,
 * which calls the test's main (__real_main) and writes the secret to the report descriptor only if
 * it returned 0. exit(0), quick_exit, _exit, atexit handlers and constructors that end the process
 * never get there.
 *
 * Everything but __wrap_main is static (a program cannot name it), and the system calls are made
 * directly (x86-64, AArch64), so a program that defines its own read()/write() never sees the
 * secret. Calling __wrap_main itself runs the whole test (a second entry aborts).
 *
 * __assert_fail, which the test's assert() calls, is defined here too, as glibc's (the same
 * message, then SIGABRT): a program that defines its own, one that returns, would otherwise disarm
 * every assertion of the test; now it gets a duplicate definition.
 *
 * Not covered: an IFUNC resolver or a .preinit_array entry of the program placed before this one, a
 * program that searches its memory for the secret or rewrites its stack, or one whose macros
 * rewrite the test's text (attacks, not early exits).
 */
#include <stddef.h>

static char geex_secret[128];
static long geex_secret_len;
static int geex_report_fd = -1;
static int geex_entered;
static const char *geex_progname = "";

#if defined(__x86_64__)
static long geex_syscall3(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}
#define GEEX_SYS_READ 0
#define GEEX_SYS_WRITE 1
#define GEEX_SYS_GETPID 39
#define GEEX_SYS_KILL 62
#define GEEX_SYS_EXIT_GROUP 231
#elif defined(__aarch64__)
static long geex_syscall3(long nr, long a, long b, long c) {
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
#define GEEX_SYS_READ 63
#define GEEX_SYS_WRITE 64
#define GEEX_SYS_GETPID 172
#define GEEX_SYS_KILL 129
#define GEEX_SYS_EXIT_GROUP 94
#else
#include <signal.h>
#include <unistd.h>
static long geex_syscall3(long nr, long a, long b, long c) {
    switch (nr) {
    case 0: return (long)read((int)a, (void *)b, (size_t)c);
    case 1: return (long)write((int)a, (const void *)b, (size_t)c);
    case 2: return (long)getpid();
    case 3: return (long)kill((pid_t)a, (int)b);
    default: _exit((int)a);
    }
}
#define GEEX_SYS_READ 0
#define GEEX_SYS_WRITE 1
#define GEEX_SYS_GETPID 2
#define GEEX_SYS_KILL 3
#define GEEX_SYS_EXIT_GROUP 4
#endif

static void geex_read_secret(int argc, char **argv, char **envp) {
    if (argc > 0 && argv && argv[0]) {
        geex_progname = argv[0];
        for (const char *p = argv[0]; *p; p++)
            if (*p == '/') geex_progname = p + 1;
    }
    static const char key[] = "GEEX_PROOF_FD=";
    for (char **e = envp; e && *e; e++) {
        size_t i = 0;
        while (key[i] && (*e)[i] == key[i]) i++;
        if (key[i]) continue;
        int fd = 0;
        for (const char *p = *e + i; *p >= '0' && *p <= '9'; p++) fd = fd * 10 + (*p - '0');
        geex_report_fd = fd;
        break;
    }
    if (geex_report_fd < 0) return;
    char c;
    while (geex_secret_len < (long)sizeof geex_secret &&
           geex_syscall3(GEEX_SYS_READ, 0, (long)&c, 1) == 1 && c != '\n') {
        geex_secret[geex_secret_len++] = c;
    }
}

__attribute__((used, section(".preinit_array")))
static void (*const geex_preinit)(int, char **, char **) = geex_read_secret;

int __real_main(int argc, char **argv, char **envp);

int __wrap_main(int argc, char **argv, char **envp) {
    if (geex_entered++) __builtin_trap();
    int status = __real_main(argc, argv, envp);
    if (status == 0 && geex_report_fd >= 0 && geex_secret_len > 0) {
        geex_syscall3(GEEX_SYS_WRITE, geex_report_fd, (long)geex_secret, geex_secret_len);
    }
    return status;
}

static void geex_put(const char *s) {
    long n = 0;
    while (s[n]) n++;
    geex_syscall3(GEEX_SYS_WRITE, 2, (long)s, n);
}

/* glibc's: "<program>: <file>:<line>: <function>: Assertion `<expression>' failed." and SIGABRT. */
__attribute__((noreturn))
void __assert_fail(const char *assertion, const char *file, unsigned int line, const char *function) {
    char digits[16];
    int i = sizeof digits - 1;
    digits[i] = 0;
    do {
        digits[--i] = (char)('0' + line % 10);
        line /= 10;
    } while (line && i > 0);
    geex_put(geex_progname);
    geex_put(*geex_progname ? ": " : "");
    geex_put(file);
    geex_put(":");
    geex_put(digits + i);
    geex_put(": ");
    if (function) {
        geex_put(function);
        geex_put(": ");
    }
    geex_put("Assertion `");
    geex_put(assertion);
    geex_put("' failed.\n");
    geex_syscall3(GEEX_SYS_KILL, geex_syscall3(GEEX_SYS_GETPID, 0, 0, 0), 6 /* SIGABRT */, 0);
    for (;;) geex_syscall3(GEEX_SYS_EXIT_GROUP, 134, 0, 0); /* SIGABRT handled or blocked */
}
