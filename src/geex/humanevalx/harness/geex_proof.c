/* geex's C++ test harness: linked *before* the program, with -Wl,--wrap=main.
 *
 * Prologue, program, epilogue (see geex/humanevalx/proof.py): geex_read_secret is the first entry
 * of the executable's .preinit_array (this object comes first on the link line), so it runs before
 * every constructor of the program (__attribute__((constructor)) at any priority, static objects)
 * and reads the secret from stdin. The link sends the C runtime's call of main to __wrap_main,
 * which calls the test's main (__real_main) and writes the secret to the report descriptor only if
 * it returned 0. exit(0), quick_exit, _exit, atexit handlers and constructors that end the process
 * never get there.
 *
 * Everything but __wrap_main is static (a program cannot name it), and the system calls are made
 * directly (x86-64, AArch64), so a program that defines its own read()/write() never sees the
 * secret. Calling __wrap_main itself runs the whole test (a second entry aborts). Not covered: an
 * IFUNC resolver or a .preinit_array entry of the program placed before this one, or a program that
 * searches its memory for the secret (attacks, not early exits).
 */
#include <stddef.h>

static char geex_secret[128];
static long geex_secret_len;
static int geex_report_fd = -1;
static int geex_entered;

#if defined(__x86_64__)
static long geex_syscall3(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}
#define GEEX_SYS_READ 0
#define GEEX_SYS_WRITE 1
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
#else
#include <unistd.h>
static long geex_syscall3(long nr, long a, long b, long c) {
    return nr == 0 ? (long)read((int)a, (void *)b, (size_t)c) : (long)write((int)a, (const void *)b, (size_t)c);
}
#define GEEX_SYS_READ 0
#define GEEX_SYS_WRITE 1
#endif

static void geex_read_secret(int argc, char **argv, char **envp) {
    (void)argc;
    (void)argv;
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
