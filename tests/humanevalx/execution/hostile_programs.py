"""Hostile completions for HumanEval-X task 53 (``add(x, y)``) in every language.

Each program is a *completion*: it is spliced by ``assemble`` into the real prompt and test of
task 53, then compiled and run by the real runner. Escape attempts are written so that the program
**passes the task's test only if the escape worked** (the file was readable, the connection was
made, the write succeeded); when everything was blocked it prints ``GEEX-CONTAINED`` and the
reasons to stderr and exits with status 3 (a ``runtime_error``). Run without a sandbox (the
positive controls in the tests) the same programs pass, so the assertions can fail.

The escapes: ``read_secrets`` (the harness's environment, and files outside the allow-list: it
passes once ``@NEED@`` of them were readable), ``write_outside``, ``network``, ``setuid``,
``proc_cmdline`` (another process's command line or environment naming ``@TOKEN@``, a host path
outside the allow-list; its own environment is skipped: ``PWD`` is its work directory, which it
knows anyway), ``nested_userns`` (a new user namespace, by the system call or ``unshare -U``).
Programs that must end at a limit: loops, bombs, floods, and ``memory_beyond_rlimit``: 1.5 GB that
no per-process limit sees (memfd files in Python, C++ and Rust; native memory beside the JVM heap in
Java; several processes, each small enough for its own address-space limit, in Go and JavaScript:
neither has memfd, and the sandbox's /dev/shm is not writable), which only the run's memory cgroup
stops. ``exit_137`` / ``exit_152``: correct programs that end with a status bubblewrap would encode
for SIGKILL / SIGXCPU.

Placeholders (``@NAME@``) are filled by :func:`hostile`; paths are string literals in every language.
"""

from __future__ import annotations

import json
import re

TASK = {"python": "Python/53", "cpp": "CPP/53", "java": "Java/53", "js": "JavaScript/53",
        "go": "Go/53", "rust": "Rust/53"}
CONTAINED = "GEEX-CONTAINED"
ENV_SECRET = "GEEX_HOSTILE_SECRET"  # set in the harness's environment: must not reach programs
# Exit statuses a program chooses that bubblewrap's own status would read as a signal (128 + N):
# 137 = SIGKILL, 152 = SIGXCPU (a time limit, to the old harness)
EXIT_STATUSES = (137, 152)


def _exits(template: str) -> dict[str, str]:
    """One ``exit_<status>`` kind per status of :data:`EXIT_STATUSES`."""
    return {f"exit_{status}": template.replace("@STATUS@", str(status)) for status in EXIT_STATUSES}


# -- Python: the body of ``def add(x: int, y: int):`` ------------------------------------------------
PY = {
    "infinite_loop": """\
    while True:
        pass
""",
    "sleep_forever": """\
    import time
    time.sleep(10**6)
    return x + y
""",
    "fork_bomb": """\
    import os
    while True:
        try:
            os.fork()
        except OSError:
            pass
""",
    "memory_bomb": """\
    hog = []
    while True:
        hog.append(bytes(256 << 20))
""",
    "huge_output": """\
    import sys
    line = "x" * 1023 + "\\n"
    while True:
        sys.stdout.write(line)
""",
    "huge_stderr": """\
    import os
    block = b"e" * 65536
    while True:
        os.write(2, block)
""",
    "read_secrets": """\
    import os
    if os.environ.get("@ENV_SECRET@"):
        return x + y  # the harness's environment leaked in
    errors, readable = [], 0
    for path in @SECRETS@:
        try:
            with open(path, "rb") as f:
                f.read(16)
            readable += 1  # escaped: the secret was readable
        except OSError as e:
            errors.append(f"{path}: {e.strerror}")
    if readable >= @NEED@:
        return x + y
    import sys
    print(*errors, "@CONTAINED@", sep="\\n", file=sys.stderr)
    sys.exit(3)
""",
    "write_outside": """\
    import sys
    wrote, errors = [], []
    for path in @TARGETS@:
        try:
            with open(path, "w") as f:
                f.write("escaped")
            wrote.append(path)
        except OSError as e:
            errors.append(f"{path}: {e.strerror}")
    if [p for p in wrote if not p.startswith("/tmp/")]:
        return x + y
    print(*errors, "@CONTAINED@", sep="\\n", file=sys.stderr)
    sys.exit(3)
""",
    "network": """\
    import socket, sys
    errors = []
    for host, port in (("127.0.0.1", @PORT@), ("@OUTSIDE_HOST@", @OUTSIDE_PORT@)):
        try:
            socket.create_connection((host, port), timeout=1).close()
            return x + y
        except OSError as e:
            errors.append(f"{host}:{port}: {e}")
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(1)
        s.connect("@UNIX@")
        return x + y
    except OSError as e:
        errors.append(f"@UNIX@: {e}")
    print(*errors, "@CONTAINED@", sep="\\n", file=sys.stderr)
    sys.exit(3)
""",
    "kill_parent": """\
    import os, signal
    for pid in (os.getppid(), -1, 1):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass
    return x + y
""",
    "outlive": """\
    import os, subprocess
    subprocess.Popen(["sh", "-c", "sleep @SLEEP@; echo escaped > @MARK@"], start_new_session=True)
    if os.fork() == 0:  # a daemon: double fork, new session, parent returns at once
        os.setsid()
        if os.fork() == 0:
            import time
            time.sleep(@SLEEP@)
            with open("@MARK@", "w") as f:
                f.write("escaped")
        os._exit(0)
    return x + y
""",
    "setuid": """\
    import subprocess, sys
    out = subprocess.run(["@SUID@", "-u"], capture_output=True, text=True).stdout.strip()
    if out == "0":
        return x + y
    print("euid", out, "@CONTAINED@", file=sys.stderr)
    sys.exit(3)
""",
    "proc_cmdline": """\
    import os, sys
    me, errors, read = str(os.getpid()), [], 0
    for pid in ["1", *sorted(p for p in os.listdir("/proc") if p.isdigit() and p != "1")]:
        for name in ("cmdline", "environ"):
            if name == "environ" and pid == me:
                continue  # its own environment: PWD names its work directory, which it may know
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    data = f.read()
            except OSError as e:
                errors.append(f"/proc/{pid}/{name}: {e.strerror}")
                continue
            read += 1
            if b"@TOKEN@" in data:
                return x + y  # another process names a host path outside the allow-list
    print(*errors, f"{read} files read, none names @TOKEN@", "@CONTAINED@", sep="\\n", file=sys.stderr)
    sys.exit(3)
""",
    "memory_beyond_rlimit": """\
    import os
    chunk = b"\\1" * (1 << 20)
    fds = []
    for i in range(@MEM_FILES@):  # memfd files: tmpfs pages, in no process's address space
        fd = os.memfd_create(f"geex-{i}")
        for _ in range(@MEM_FILE_MB@):  # each file below RLIMIT_FSIZE
            if os.write(fd, chunk) != len(chunk):
                raise OSError("short write")
        fds.append(fd)
    for fd in fds:
        os.close(fd)
    return x + y
""",
    "nested_userns": """\
    import ctypes, os, subprocess, sys
    errors = []
    r = subprocess.run(["unshare", "-U", "true"], capture_output=True, text=True)
    if r.returncode == 0:
        return x + y
    errors.append(f"unshare -U true: {r.stderr.strip()}")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) == 0:  # CLONE_NEWUSER
        return x + y
    errors.append(f"unshare(CLONE_NEWUSER): {os.strerror(ctypes.get_errno())}")
    print(*errors, "@CONTAINED@", sep="\\n", file=sys.stderr)
    sys.exit(3)
""",
    **_exits("""\
    import atexit, os
    atexit.register(os._exit, @STATUS@)  # the test passes, then the program exits with this status
    return x + y
"""),
}

# -- C++: the body of ``int add(int x,int y){``; the hostile part is a function defined after it --
_CPP_HEAD = """\
    int geex_hostile(int, int);
    return geex_hostile(x, y);
}
#include <unistd.h>
#include <signal.h>
#include <fcntl.h>
#include <errno.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sched.h>
#include <cctype>
#include <arpa/inet.h>
#include <string>
#include <vector>
#include <cstring>
#include <cstdlib>
#include <cstdio>
static std::string geex_errors;
static void geex_contained() {
    fprintf(stderr, "%s@CONTAINED@\\n", geex_errors.c_str());
    exit(3);
}
static void geex_err(const std::string& what) { geex_errors += what + ": " + strerror(errno) + "\\n"; }
int geex_hostile(int x, int y) {
    static bool geex_done = false;  // the test calls add() many times: act once
    if (geex_done) return x + y;
    geex_done = true;
"""
CPP = {
    "infinite_loop": "    while (true) {}\n",
    "sleep_forever": "    sleep(1000000);\n    return x + y;\n",
    "fork_bomb": "    while (true) fork();\n",
    "memory_bomb": """\
    std::vector<char*> hog;
    while (true) { char* p = new char[256 << 20]; p[0] = 1; hog.push_back(p); }
""",
    "huge_output": """\
    std::string line(1023, 'x');
    while (true) printf("%s\\n", line.c_str());
""",
    "huge_stderr": """\
    static char block[65536];
    memset(block, 'e', sizeof block);
    while (true) if (write(2, block, sizeof block) < 0) {}
""",
    "read_secrets": """\
    if (getenv("@ENV_SECRET@")) return x + y;
    int readable = 0;
    for (const char* path : @SECRETS@) {
        int fd = open(path, O_RDONLY);
        char buf[16];
        if (fd >= 0 && read(fd, buf, sizeof buf) >= 0) readable++;
        else geex_err(path);
        if (fd >= 0) close(fd);
    }
    if (readable >= @NEED@) return x + y;
    geex_contained();
    return 0;
""",
    "write_outside": """\
    bool escaped = false;
    for (const char* path : @TARGETS@) {
        FILE* f = fopen(path, "w");
        if (f && fputs("escaped", f) >= 0 && fclose(f) == 0) {
            if (strncmp(path, "/tmp/", 5) != 0) escaped = true;
        } else {
            geex_err(path);
        }
    }
    if (escaped) return x + y;
    geex_contained();
    return 0;
""",
    "network": """\
    struct { const char* host; int port; } targets[] = {{"127.0.0.1", @PORT@}, {"@OUTSIDE_HOST@", @OUTSIDE_PORT@}};
    for (auto& t : targets) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct timeval tv = {1, 0};
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(t.port);
        inet_pton(AF_INET, t.host, &a.sin_addr);
        if (s >= 0 && connect(s, (sockaddr*)&a, sizeof a) == 0) return x + y;
        geex_err(t.host);
    }
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un ua{};
    ua.sun_family = AF_UNIX;
    strncpy(ua.sun_path, "@UNIX@", sizeof ua.sun_path - 1);
    if (u >= 0 && connect(u, (sockaddr*)&ua, sizeof ua) == 0) return x + y;
    geex_err("@UNIX@");
    geex_contained();
    return 0;
""",
    "kill_parent": """\
    kill(getppid(), SIGKILL);
    kill(-1, SIGKILL);
    kill(1, SIGKILL);
    if (DIR* d = opendir("/proc")) {
        while (dirent* e = readdir(d)) {
            int pid = atoi(e->d_name);
            if (pid > 0 && pid != getpid()) kill(pid, SIGKILL);
        }
    }
    return x + y;
""",
    "outlive": """\
    if (fork() == 0) {
        setsid();
        if (fork() == 0) {
            execl("/bin/sh", "sh", "-c", "sleep @SLEEP@; echo escaped > @MARK@", (char*)nullptr);
        }
        _exit(0);
    }
    return x + y;
""",
    "setuid": """\
    FILE* p = popen("@SUID@ -u", "r");
    char out[32] = {0};
    if (p && fgets(out, sizeof out, p) && atoi(out) == 0 && out[0] == '0') return x + y;
    fprintf(stderr, "euid %s @CONTAINED@\\n", out);
    exit(3);
""",
    "proc_cmdline": """\
    std::string me = std::to_string(getpid());
    std::vector<std::string> pids = {"1"};
    if (DIR* d = opendir("/proc")) {
        while (dirent* e = readdir(d))
            if (isdigit((unsigned char)e->d_name[0]) && strcmp(e->d_name, "1") != 0) pids.push_back(e->d_name);
        closedir(d);
    }
    int seen = 0;
    for (const std::string& pid : pids) {
        for (std::string name : {"cmdline", "environ"}) {
            if (name == "environ" && pid == me) continue;  // its own environment (PWD: its work directory)
            std::string path = "/proc/" + pid + "/" + name;
            int fd = open(path.c_str(), O_RDONLY);
            if (fd < 0) { geex_err(path); continue; }
            std::string data;
            char buf[4096];
            ssize_t n;
            while ((n = read(fd, buf, sizeof buf)) > 0) data.append(buf, n);
            if (n < 0) geex_err(path);
            close(fd);
            seen++;
            if (data.find("@TOKEN@") != std::string::npos) return x + y;
        }
    }
    geex_errors += std::to_string(seen) + " files read, none names @TOKEN@\\n";
    geex_contained();
    return 0;
""",
    "memory_beyond_rlimit": """\
    static char chunk[1 << 20];
    memset(chunk, 1, sizeof chunk);
    for (int i = 0; i < @MEM_FILES@; i++) {  // memfd files: tmpfs pages, in no address space
        int fd = memfd_create("geex", 0);
        if (fd < 0) { perror("memfd_create"); exit(1); }
        for (int j = 0; j < @MEM_FILE_MB@; j++) {  // each file below RLIMIT_FSIZE
            if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk) { perror("write"); exit(1); }
        }
    }
    return x + y;
""",
    "nested_userns": """\
    if (unshare(CLONE_NEWUSER) == 0) return x + y;
    geex_err("unshare(CLONE_NEWUSER)");
    if (system("unshare -U true") == 0) return x + y;
    geex_errors += "unshare -U true: failed\\n";
    geex_contained();
    return 0;
""",
    **_exits("""\
    atexit([] { _exit(@STATUS@); });  // the test passes, then the program exits with this status
    return x + y;
"""),
}

# -- Java: the body of ``public int add(int x, int y) {``; then a class of our own --------------------
_JAVA_HEAD = """\
        return Hostile.run(x, y);
    }
}
class Hostile {
    static String errors = "";
    static boolean done = false;  // the test calls add() many times: act once
    static void contained() {
        System.err.println(errors + "\\n@CONTAINED@");
        System.exit(3);
    }
    static boolean exec(String... argv) {
        try {
            return new ProcessBuilder(argv).inheritIO().start().waitFor() == 0;
        } catch (Exception e) {
            errors += String.join(" ", argv) + ": " + e + "\\n";
            return false;
        }
    }
    static int run(int x, int y) {
        if (done) return x + y;
        done = true;
"""
JAVA = {
    "infinite_loop": "        while (true) {}\n",
    "sleep_forever": "        try { Thread.sleep(1000000000L); } catch (InterruptedException e) {}\n        return x + y;\n",
    "fork_bomb": """\
        while (true) {
            try { new ProcessBuilder("sh", "-c", "sleep 60").start(); } catch (Exception e) {}
            try { new Thread(() -> { try { Thread.sleep(60000); } catch (Exception e) {} }).start(); } catch (Throwable e) {}
        }
""",
    "memory_bomb": """\
        java.util.List<long[]> hog = new java.util.ArrayList<>();
        while (true) hog.add(new long[8 << 20]);
""",
    "huge_output": """\
        String line = "x".repeat(1023);
        while (true) System.out.println(line);
""",
    "huge_stderr": """\
        String line = "e".repeat(1023);
        while (true) System.err.println(line);
""",
    "read_secrets": """\
        if (System.getenv("@ENV_SECRET@") != null) return x + y;
        int readable = 0;
        for (String path : new String[] @SECRETS@) {
            try (java.io.InputStream in = java.nio.file.Files.newInputStream(java.nio.file.Path.of(path))) {
                in.read();
                readable++;
            } catch (Exception e) { errors += path + ": " + e + "\\n"; }
        }
        if (readable >= @NEED@) return x + y;
        contained();
        return 0;
""",
    "write_outside": """\
        boolean escaped = false;
        for (String path : new String[] @TARGETS@) {
            try {
                java.nio.file.Files.writeString(java.nio.file.Path.of(path), "escaped");
                if (!path.startsWith("/tmp/")) escaped = true;
            } catch (Exception e) { errors += path + ": " + e + "\\n"; }
        }
        if (escaped) return x + y;
        contained();
        return 0;
""",
    "network": """\
        String[][] targets = {{"127.0.0.1", "@PORT@"}, {"@OUTSIDE_HOST@", "@OUTSIDE_PORT@"}};
        for (String[] t : targets) {
            try (java.net.Socket s = new java.net.Socket()) {
                s.connect(new java.net.InetSocketAddress(t[0], Integer.parseInt(t[1])), 1000);
                return x + y;
            } catch (Exception e) { errors += t[0] + ": " + e + "\\n"; }
        }
        try (java.nio.channels.SocketChannel c = java.nio.channels.SocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            c.connect(java.net.UnixDomainSocketAddress.of("@UNIX@"));
            return x + y;
        } catch (Exception e) { errors += "@UNIX@: " + e + "\\n"; }
        contained();
        return 0;
""",
    "kill_parent": """\
        ProcessHandle.current().parent().ifPresent(ProcessHandle::destroyForcibly);
        ProcessHandle.allProcesses().forEach(p -> {
            try { p.destroyForcibly(); } catch (Exception e) {}
        });
        return x + y;
""",
    "outlive": """\
        exec("setsid", "-f", "sh", "-c", "sleep @SLEEP@; echo escaped > @MARK@");
        return x + y;
""",
    "setuid": """\
        try {
            Process p = new ProcessBuilder("@SUID@", "-u").start();
            String out = new String(p.getInputStream().readAllBytes()).trim();
            if (out.equals("0")) return x + y;
            errors += "euid " + out;
        } catch (Exception e) { errors += e; }
        contained();
        return 0;
""",
    "proc_cmdline": """\
        String me = Long.toString(ProcessHandle.current().pid());
        java.util.List<String> pids = new java.util.ArrayList<>(java.util.List.of("1"));
        for (String p : new java.io.File("/proc").list()) if (p.chars().allMatch(Character::isDigit) && !p.equals("1")) pids.add(p);
        int seen = 0;
        for (String pid : pids) {
            for (String name : new String[] {"cmdline", "environ"}) {
                if (name.equals("environ") && pid.equals(me)) continue;  // its own (PWD: its work directory)
                try {
                    byte[] data = java.nio.file.Files.readAllBytes(java.nio.file.Path.of("/proc", pid, name));
                    seen++;
                    if (new String(data, java.nio.charset.StandardCharsets.ISO_8859_1).contains("@TOKEN@")) return x + y;
                } catch (Exception e) { errors += "/proc/" + pid + "/" + name + ": " + e + "\\n"; }
            }
        }
        errors += seen + " files read, none names @TOKEN@";
        contained();
        return 0;
""",
    # No memfd from Java, and the sandbox's /dev/shm is not writable: native memory outside the
    # heap (-Xmx) instead, which only the JVM's address-space limit (8 GB) would bound
    "memory_beyond_rlimit": """\
        try {
            java.lang.reflect.Field field = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
            field.setAccessible(true);
            sun.misc.Unsafe unsafe = (sun.misc.Unsafe) field.get(null);
            for (int i = 0; i < @MEM_FILES@; i++) {
                long block = unsafe.allocateMemory((long) @MEM_FILE_MB@ << 20);
                unsafe.setMemory(block, (long) @MEM_FILE_MB@ << 20, (byte) 1);
            }
        } catch (ReflectiveOperationException e) {
            errors += e;
            contained();
        }
        return x + y;
""",
    "nested_userns": """\
        if (exec("unshare", "-U", "true")) return x + y;
        errors += "unshare -U true: failed";
        contained();
        return 0;
""",
    **_exits("""\
        // the test passes, then the program exits with this status
        Runtime.getRuntime().addShutdownHook(new Thread(() -> Runtime.getRuntime().halt(@STATUS@)));
        return x + y;
"""),
}

# -- JavaScript: the body of ``const add = (x, y) => {``; a hoisted function after it -----------------
_JS_HEAD = """\
  return geexHostile(x, y);
}
const geexCp = require("child_process");
const geexFs = require("fs");
let geexErrors = [];
function geexContained() {
  process.stderr.write(geexErrors.join("\\n") + "\\n@CONTAINED@\\n");
  process.exit(3);
}
function geexHostile(x, y) {
  if (geexHostile.done) return x + y;  // the test calls add() many times: act once
  geexHostile.done = true;
"""
# A synchronous connect: a child node process exits 0 only if the connection was made.
_JS_CONNECT = (
    "const n=require('net');const a=JSON.parse(process.argv[1]);"
    "const s=n.connect(a,()=>process.exit(0));s.on('error',e=>{console.error(e.message);process.exit(1)});"
    "setTimeout(()=>process.exit(1),1000)"
)
# A memory holder: fills its share, says so with a marker file (in the sandbox's private /tmp), holds,
# and answers SIGUSR2 with a second marker (SIGUSR1 would start node's inspector).
_JS_MEMORY_CHILD = (
    "const f=require('fs'),m=process.argv[1],b=Buffer.alloc(@MEM_CHILD_MB@*1048576,1);"
    "process.on('SIGUSR2',()=>f.writeFileSync(m+'-held',String(b[b.length-1])));"
    "f.writeFileSync(m,'');setInterval(()=>{},1000)"
)
JS = {
    "infinite_loop": "  while (true) {}\n",
    "sleep_forever": "  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);\n  return x + y;\n",
    "fork_bomb": """\
  while (true) {
    try { geexCp.spawn("sh", ["-c", "sleep 60 & sleep 60"], {detached: true, stdio: "ignore"}); } catch (e) {}
    try { geexCp.spawnSync("sh", ["-c", "sleep 60 & sleep 60 & sleep 60"]); } catch (e) {}
  }
""",
    "memory_bomb": """\
  const hog = [];
  while (true) hog.push(Buffer.alloc(256 * 1024 * 1024));
""",
    "huge_output": """\
  const line = "x".repeat(1023) + "\\n";
  while (true) geexFs.writeSync(1, line);
""",
    "huge_stderr": """\
  const block = "e".repeat(65535) + "\\n";
  while (true) geexFs.writeSync(2, block);
""",
    "read_secrets": """\
  if (process.env["@ENV_SECRET@"]) return x + y;
  let readable = 0;
  for (const path of @SECRETS@) {
    try { geexFs.readFileSync(path); readable++; } catch (e) { geexErrors.push(path + ": " + e.message); }
  }
  if (readable >= @NEED@) return x + y;
  geexContained();
""",
    "write_outside": """\
  let escaped = false;
  for (const path of @TARGETS@) {
    try { geexFs.writeFileSync(path, "escaped"); if (!path.startsWith("/tmp/")) escaped = true; }
    catch (e) { geexErrors.push(path + ": " + e.message); }
  }
  if (escaped) return x + y;
  geexContained();
""",
    "network": """\
  const targets = [{host: "127.0.0.1", port: @PORT@}, {host: "@OUTSIDE_HOST@", port: @OUTSIDE_PORT@}, {path: "@UNIX@"}];
  for (const t of targets) {
    const r = geexCp.spawnSync(process.execPath, ["-e", @JS_CONNECT@, JSON.stringify(t)], {encoding: "utf8"});
    if (r.status === 0) return x + y;
    geexErrors.push(JSON.stringify(t) + ": " + (r.stderr || "").trim());
  }
  geexContained();
""",
    "kill_parent": """\
  for (const pid of [process.ppid, -1, 1]) { try { process.kill(pid, "SIGKILL"); } catch (e) {} }
  for (const entry of geexFs.readdirSync("/proc")) {
    const pid = Number(entry);
    if (pid > 0 && pid !== process.pid) { try { process.kill(pid, "SIGKILL"); } catch (e) {} }
  }
  return x + y;
""",
    "outlive": """\
  geexCp.spawn("sh", ["-c", "sleep @SLEEP@; echo escaped > @MARK@"], {detached: true, stdio: "ignore"}).unref();
  return x + y;
""",
    "setuid": """\
  const out = geexCp.spawnSync("@SUID@", ["-u"], {encoding: "utf8"}).stdout.trim();
  if (out === "0") return x + y;
  geexErrors.push("euid " + out);
  geexContained();
""",
    "proc_cmdline": """\
  const me = String(process.pid);
  const pids = ["1", ...geexFs.readdirSync("/proc").filter(p => /^[0-9]+$/.test(p) && p !== "1")];
  let seen = 0;
  for (const pid of pids) {
    for (const name of ["cmdline", "environ"]) {
      if (name === "environ" && pid === me) continue;  // its own environment (PWD: its work directory)
      let data;
      try { data = geexFs.readFileSync(`/proc/${pid}/${name}`); }
      catch (e) { geexErrors.push(`/proc/${pid}/${name}: ${e.message}`); continue; }
      seen++;
      if (data.includes("@TOKEN@")) return x + y;
    }
  }
  geexErrors.push(`${seen} files read, none names @TOKEN@`);
  geexContained();
""",
    # No memfd from JavaScript, and the sandbox's /dev/shm is not writable: child processes, each
    # well below its own address-space limit, holding the memory together. Two rounds (as in Go):
    # every holder marks that it filled its share, then every one must still be alive to answer
    # SIGUSR2 once all allocations are done.
    "memory_beyond_rlimit": """\
  const kids = [];
  for (let i = 0; i < @MEM_CHILDREN@; i++) {
    kids.push(geexCp.spawn(process.execPath, ["-e", @JS_MEMORY_CHILD@, `@MEM_MARK@-${i}`],
                           {stdio: ["ignore", "ignore", "inherit"]}));
  }
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const waitFor = suffix => {
    while (!kids.every((k, i) => geexFs.existsSync(`@MEM_MARK@-${i}${suffix}`))) {
      const dead = kids.filter(k => {  // a killed holder stays a zombie: this loop never reaps it
        try { return geexFs.readFileSync(`/proc/${k.pid}/stat`, "utf8").split(") ").pop()[0] === "Z"; }
        catch (e) { return true; }
      });
      if (dead.length) {
        kids.forEach(k => k.kill("SIGKILL"));
        geexErrors.push(`${dead.length} memory holder(s) died`);
        geexContained();
      }
      Atomics.wait(pause, 0, 0, 20);
    }
  };
  waitFor("");
  kids.forEach(k => k.kill("SIGUSR2"));
  waitFor("-held");
  kids.forEach(k => k.kill("SIGKILL"));
  return x + y;
""",
    "nested_userns": """\
  const r = geexCp.spawnSync("unshare", ["-U", "true"], {encoding: "utf8"});
  if (r.status === 0) return x + y;
  geexErrors.push("unshare -U true: " + (r.error || (r.stderr || "").trim()));
  geexContained();
""",
    **_exits("""\
  process.on("exit", () => process.exit(@STATUS@));  // the test passes, then this exit status
  return x + y;
"""),
}

# -- Go: the body of ``func Add(x int, y int) int {``. Only the packages assembly imports are usable
# (os, fmt, strings, time, ...): processes through os.StartProcess, the network through a shell.
_GO_HEAD = """\
    return geexHostile(x, y)
}

var geexErrors []string
var geexDone bool // the test calls Add() many times: act once

func geexContained() {
    fmt.Fprintln(os.Stderr, strings.Join(geexErrors, "\\n") + "\\n@CONTAINED@")
    os.Exit(3)
}

func geexRun(argv ...string) bool {
    p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{Files: []*os.File{nil, os.Stderr, os.Stderr}})
    if err != nil {
        geexErrors = append(geexErrors, strings.Join(argv, " ") + ": " + err.Error())
        return false
    }
    st, err := p.Wait()
    return err == nil && st.Success()
}

func geexHostile(x int, y int) int {
    if geexDone {
        return x + y
    }
    geexDone = true
"""
GO = {
    "infinite_loop": "    for {\n    }\n",
    "sleep_forever": "    time.Sleep(1000000 * time.Second)\n    return x + y\n",
    "fork_bomb": """\
    exe, _ := os.Executable()
    for {
        os.StartProcess(exe, []string{exe, "-test.count=1"}, &os.ProcAttr{})
    }
""",
    "memory_bomb": """\
    var hog [][]byte
    for {
        b := make([]byte, 256<<20)
        b[0] = 1
        hog = append(hog, b)
    }
""",
    "huge_output": """\
    line := strings.Repeat("x", 1023)
    for {
        fmt.Println(line)
    }
""",
    "huge_stderr": """\
    block := []byte(strings.Repeat("e", 65536))
    for {
        os.Stderr.Write(block)
    }
""",
    "read_secrets": """\
    if os.Getenv("@ENV_SECRET@") != "" {
        return x + y
    }
    readable := 0
    for _, path := range []string@SECRETS@ {
        if _, err := os.ReadFile(path); err == nil {
            readable++
        } else {
            geexErrors = append(geexErrors, err.Error())
        }
    }
    if readable >= @NEED@ {
        return x + y
    }
    geexContained()
    return 0
""",
    "write_outside": """\
    escaped := false
    for _, path := range []string@TARGETS@ {
        if err := os.WriteFile(path, []byte("escaped"), 0644); err == nil {
            if !strings.HasPrefix(path, "/tmp/") {
                escaped = true
            }
        } else {
            geexErrors = append(geexErrors, err.Error())
        }
    }
    if escaped {
        return x + y
    }
    geexContained()
    return 0
""",
    "network": """\
    for _, target := range []string{"127.0.0.1/@PORT@", "@OUTSIDE_HOST@/@OUTSIDE_PORT@"} {
        if geexRun("/usr/bin/timeout", "1", "/bin/bash", "-c", "echo hi > /dev/tcp/" + target) {
            return x + y
        }
    }
    if geexRun("/usr/bin/python3", "-c", "import socket; socket.socket(socket.AF_UNIX).connect('@UNIX@')") {
        return x + y
    }
    geexContained()
    return 0
""",
    "kill_parent": """\
    if p, err := os.FindProcess(os.Getppid()); err == nil {
        p.Kill()
    }
    if p, err := os.FindProcess(1); err == nil {
        p.Kill()
    }
    entries, _ := os.ReadDir("/proc")
    for _, e := range entries {
        var pid int
        if _, err := fmt.Sscan(e.Name(), &pid); err == nil && pid != os.Getpid() {
            if p, err := os.FindProcess(pid); err == nil {
                p.Kill()
            }
        }
    }
    return x + y
""",
    "outlive": """\
    geexRun("/usr/bin/setsid", "-f", "/bin/sh", "-c", "sleep @SLEEP@; echo escaped > @MARK@")
    return x + y
""",
    "setuid": """\
    r, w, _ := os.Pipe()
    p, err := os.StartProcess("@SUID@", []string{"@SUID@", "-u"}, &os.ProcAttr{Files: []*os.File{nil, w, os.Stderr}})
    w.Close()
    if err == nil {
        buf := make([]byte, 32)
        n, _ := r.Read(buf)
        p.Wait()
        if strings.TrimSpace(string(buf[:n])) == "0" {
            return x + y
        }
        geexErrors = append(geexErrors, "euid " + string(buf[:n]))
    }
    geexContained()
    return 0
""",
    "proc_cmdline": """\
    me := fmt.Sprint(os.Getpid())
    pids := []string{"1"}
    entries, _ := os.ReadDir("/proc")
    for _, e := range entries {
        if strings.Trim(e.Name(), "0123456789") == "" && e.Name() != "1" {
            pids = append(pids, e.Name())
        }
    }
    seen := 0
    for _, pid := range pids {
        for _, name := range []string{"cmdline", "environ"} {
            if name == "environ" && pid == me {
                continue // its own environment (PWD: its work directory)
            }
            data, err := os.ReadFile("/proc/" + pid + "/" + name)
            if err != nil {
                geexErrors = append(geexErrors, err.Error())
                continue
            }
            seen++
            if strings.Contains(string(data), "@TOKEN@") {
                return x + y
            }
        }
    }
    geexErrors = append(geexErrors, fmt.Sprint(seen, " files read, none names @TOKEN@"))
    geexContained()
    return 0
""",
    # No memfd without the syscall package (assembly imports only what GO_PACKAGES names), and the
    # sandbox's /dev/shm is not writable: copies of the test binary, each well below its own
    # address-space limit, holding the memory together. Two rounds: every holder says it filled its
    # share, then (all allocations done) every holder must still be alive to answer again; a holder
    # killed at the memory limit after its first answer would otherwise go unnoticed.
    "memory_beyond_rlimit": """\
    // the holders are other processes (python3 from the system directories): a copy of this test
    // binary would start with geex's proof prologue, which reads the standard input first
    holder := "import sys\\nb = bytearray(@MEM_CHILD_MB@ << 20)\\nfor i in range(0, len(b), 4096): b[i] = 1\\n" +
        "sys.stdout.write('ok'); sys.stdout.flush(); sys.stdin.read(1)\\n" +
        "sys.stdout.write('o' + chr(b[-4096] + 48)); sys.stdout.flush(); sys.stdin.read(1)\\n"
    exe := "/usr/bin/python3"
    var holders []*os.Process
    var answers, asks []*os.File
    for i := 0; i < @MEM_CHILDREN@; i++ {
        inR, inW, _ := os.Pipe()
        outR, outW, _ := os.Pipe()
        p, err := os.StartProcess(exe, []string{exe, "-c", holder}, &os.ProcAttr{
            Files: []*os.File{inR, outW, os.Stderr}})
        inR.Close()
        outW.Close()
        if err != nil {
            geexErrors = append(geexErrors, err.Error())
            geexContained()
        }
        holders, answers, asks = append(holders, p), append(answers, outR), append(asks, inW)
    }
    died := 0
    for round := 0; round < 2; round++ {
        for i, answer := range answers {
            if round == 1 {
                asks[i].Write([]byte("?"))
            }
            if n, _ := answer.Read(make([]byte, 2)); n == 0 { // end of file: the holder died
                died++
            }
        }
    }
    for i, p := range holders {
        asks[i].Close()
        p.Wait()
    }
    if died > 0 {
        geexErrors = append(geexErrors, fmt.Sprint(died, " memory holder answer(s) missing"))
        geexContained()
    }
    return x + y
""",
    "nested_userns": """\
    if geexRun("/usr/bin/unshare", "-U", "true") {
        return x + y
    }
    geexErrors = append(geexErrors, "unshare -U true: failed")
    geexContained()
    return 0
""",
    **_exits("""\
    os.Exit(@STATUS@) // Go has no exit hook: the program stops here, with this status
    return x + y
"""),
}

# -- Rust: the body of ``fn add(x:i32, y:i32) -> i32{``; a function of our own after it --------------
_RUST_HEAD = """\
    return geex_hostile(x, y);
}

fn geex_contained(errors: &[String]) -> ! {
    // straight to fd 2: the test harness captures eprintln! and exit() would drop the capture
    let text = format!("{}\\n@CONTAINED@\\n", errors.join("\\n"));
    let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
    std::process::exit(3);
}

#[allow(unreachable_code, unused_mut, unused_variables)]
fn geex_hostile(x: i32, y: i32) -> i32 {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return x + y; // the test calls add() many times: act once
    }
    let mut errors: Vec<String> = Vec::new();
"""
RUST = {
    "infinite_loop": "    loop {}\n",
    "sleep_forever": "    std::thread::sleep(std::time::Duration::from_secs(1_000_000));\n    return x + y;\n",
    "fork_bomb": """\
    let exe = std::env::current_exe().unwrap();
    loop {
        let _ = std::process::Command::new(&exe).arg("--test-threads=1").spawn();
    }
""",
    "memory_bomb": """\
    let mut hog: Vec<Vec<u8>> = Vec::new();
    loop {
        hog.push(vec![0u8; 256 << 20]);
    }
""",
    "huge_output": """\
    let line = "x".repeat(1023);
    loop {
        println!("{}", line);
    }
""",
    "huge_stderr": """\
    use std::io::Write;
    let block = vec![b'e'; 65536];
    loop {
        let _ = std::io::stderr().write(&block);
    }
""",
    "read_secrets": """\
    if std::env::var_os("@ENV_SECRET@").is_some() {
        return x + y;
    }
    let mut readable = 0;
    for path in @SECRETS@ {
        match std::fs::read(path) {
            Ok(_) => readable += 1,
            Err(e) => errors.push(format!("{}: {}", path, e)),
        }
    }
    if readable >= @NEED@ {
        return x + y;
    }
    geex_contained(&errors);
""",
    "write_outside": """\
    let mut escaped = false;
    for path in @TARGETS@ {
        match std::fs::write(path, "escaped") {
            Ok(_) => escaped |= !path.starts_with("/tmp/"),
            Err(e) => errors.push(format!("{}: {}", path, e)),
        }
    }
    if escaped {
        return x + y;
    }
    geex_contained(&errors);
""",
    "network": """\
    use std::net::ToSocketAddrs;
    for target in ["127.0.0.1:@PORT@", "@OUTSIDE_HOST@:@OUTSIDE_PORT@"] {
        let addr = target.to_socket_addrs().unwrap().next().unwrap();
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)) {
            Ok(_) => return x + y,
            Err(e) => errors.push(format!("{}: {}", target, e)),
        }
    }
    match std::os::unix::net::UnixStream::connect("@UNIX@") {
        Ok(_) => return x + y,
        Err(e) => errors.push(format!("@UNIX@: {}", e)),
    }
    geex_contained(&errors);
""",
    "kill_parent": """\
    let ppid = std::os::unix::process::parent_id().to_string();
    let _ = std::process::Command::new("kill").args(["-9", &ppid, "1"]).status();
    let _ = std::process::Command::new("kill").args(["-9", "-1"]).status();
    return x + y;
""",
    "outlive": """\
    let _ = std::process::Command::new("setsid")
        .args(["-f", "sh", "-c", "sleep @SLEEP@; echo escaped > @MARK@"])
        .status();
    return x + y;
""",
    "setuid": """\
    let out = std::process::Command::new("@SUID@").arg("-u").output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    if text == "0" {
        return x + y;
    }
    errors.push(format!("euid {}", text));
    geex_contained(&errors);
""",
    "proc_cmdline": """\
    let me = std::process::id().to_string();
    let mut pids = vec!["1".to_string()];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.chars().all(|c| c.is_ascii_digit()) && name != "1" {
                pids.push(name);
            }
        }
    }
    let mut seen = 0;
    for pid in &pids {
        for name in ["cmdline", "environ"] {
            if name == "environ" && *pid == me {
                continue; // its own environment (PWD: its work directory)
            }
            let path = format!("/proc/{}/{}", pid, name);
            match std::fs::read(&path) {
                Ok(data) => {
                    seen += 1;
                    if String::from_utf8_lossy(&data).contains("@TOKEN@") {
                        return x + y;
                    }
                }
                Err(e) => errors.push(format!("{}: {}", path, e)),
            }
        }
    }
    errors.push(format!("{} files read, none names @TOKEN@", seen));
    geex_contained(&errors);
""",
    "memory_beyond_rlimit": """\
    extern "C" {
        fn memfd_create(name: *const std::os::raw::c_char, flags: std::os::raw::c_uint) -> std::os::raw::c_int;
    }
    use std::io::Write;
    use std::os::unix::io::FromRawFd;
    let chunk = vec![1u8; 1 << 20];
    let mut files = Vec::new();
    for _ in 0..@MEM_FILES@ { // memfd files: tmpfs pages, in no process's address space
        let fd = unsafe { memfd_create(b"geex\\0".as_ptr() as *const _, 0) };
        if fd < 0 {
            errors.push(format!("memfd_create: {}", std::io::Error::last_os_error()));
            geex_contained(&errors);
        }
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        for _ in 0..@MEM_FILE_MB@ { // each file below RLIMIT_FSIZE
            file.write_all(&chunk).unwrap();
        }
        files.push(file);
    }
    return x + y;
""",
    "nested_userns": """\
    extern "C" {
        fn unshare(flags: std::os::raw::c_int) -> std::os::raw::c_int;
    }
    if unsafe { unshare(0x10000000) } == 0 { // CLONE_NEWUSER
        return x + y;
    }
    errors.push(format!("unshare(CLONE_NEWUSER): {}", std::io::Error::last_os_error()));
    match std::process::Command::new("unshare").args(["-U", "true"]).status() {
        Ok(status) if status.success() => return x + y,
        other => errors.push(format!("unshare -U true: {:?}", other)),
    }
    geex_contained(&errors);
""",
    **_exits("""\
    std::process::exit(@STATUS@); // no exit hook in Rust's test harness: it stops here
"""),
}

_BODIES = {"python": PY, "cpp": CPP, "java": JAVA, "js": JS, "go": GO, "rust": RUST}
_PY_ONCE = """\
    if globals().get("_geex_done"):  # the test calls add() many times: act once
        return x + y
    globals()["_geex_done"] = True
"""
_HEADS = {"python": _PY_ONCE, "cpp": _CPP_HEAD, "java": _JAVA_HEAD, "js": _JS_HEAD, "go": _GO_HEAD, "rust": _RUST_HEAD}
_TAILS = {"python": "", "cpp": "}\n", "java": "    }\n}\n", "js": "}\n", "go": "}\n", "rust": "}\n"}
KINDS = tuple(PY)


def _string_list(language: str, items: list[str]) -> str:
    quoted = ", ".join(json.dumps(s) for s in items)
    if language in ("java", "go"):
        return "{" + quoted + "}"
    if language == "cpp":
        return "{" + quoted + "}"
    return "[" + quoted + "]"


def hostile(language: str, kind: str, **params: object) -> str:
    """The completion of ``kind`` for ``language`` with its placeholders filled in."""
    text = _HEADS[language] + _BODIES[language][kind] + _TAILS[language]
    values = {"CONTAINED": CONTAINED, "JS_CONNECT": json.dumps(_JS_CONNECT),
              "JS_MEMORY_CHILD": json.dumps(_JS_MEMORY_CHILD), "ENV_SECRET": ENV_SECRET}
    for key, value in params.items():
        values[key.upper()] = _string_list(language, value) if isinstance(value, list) else str(value)
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    missing = sorted(set(re.findall(r"@([A-Z_]+)@", text)))
    if missing:
        raise KeyError(f"unfilled placeholders in {language}/{kind}: {missing}")
    return text
