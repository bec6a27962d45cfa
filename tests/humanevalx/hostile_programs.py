"""Hostile completions for HumanEval-X task 53 (``add(x, y)``) in every language.

Each program is a *completion*: it is spliced by ``assemble`` into the real prompt and test of
task 53, then compiled and run by the real runner. Escape attempts are written so that the program
**passes the task's test only if the escape worked** (the file was readable, the connection was
made, the write succeeded); when everything was blocked it prints ``GEEX-CONTAINED`` and the
reasons to stderr and exits with status 3 (a ``runtime_error``). Run without a sandbox (the
positive controls in the tests) the same programs pass, so the assertions can fail.

Placeholders (``@NAME@``) are filled by :func:`hostile`; paths are string literals in every language.
"""

from __future__ import annotations

import json
import re

TASK = {"python": "Python/53", "cpp": "CPP/53", "java": "Java/53", "js": "JavaScript/53",
        "go": "Go/53", "rust": "Rust/53"}
CONTAINED = "GEEX-CONTAINED"
ENV_SECRET = "GEEX_HOSTILE_SECRET"  # set in the harness's environment: must not reach programs

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
    errors = []
    for path in @SECRETS@:
        try:
            with open(path, "rb") as f:
                f.read(16)
            return x + y  # escaped: the secret was readable
        except OSError as e:
            errors.append(f"{path}: {e.strerror}")
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
    for (const char* path : @SECRETS@) {
        int fd = open(path, O_RDONLY);
        char buf[16];
        if (fd >= 0 && read(fd, buf, sizeof buf) >= 0) return x + y;
        geex_err(path);
    }
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
        for (String path : new String[] @SECRETS@) {
            try {
                java.nio.file.Files.newInputStream(java.nio.file.Path.of(path)).read();
                return x + y;
            } catch (Exception e) { errors += path + ": " + e + "\\n"; }
        }
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
  for (const path of @SECRETS@) {
    try { geexFs.readFileSync(path); return x + y; } catch (e) { geexErrors.push(path + ": " + e.message); }
  }
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
    for _, path := range []string@SECRETS@ {
        if _, err := os.ReadFile(path); err == nil {
            return x + y
        } else {
            geexErrors = append(geexErrors, err.Error())
        }
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
    for path in @SECRETS@ {
        match std::fs::read(path) {
            Ok(_) => return x + y,
            Err(e) => errors.push(format!("{}: {}", path, e)),
        }
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
    values = {"CONTAINED": CONTAINED, "JS_CONNECT": json.dumps(_JS_CONNECT), "ENV_SECRET": ENV_SECRET}
    for key, value in params.items():
        values[key.upper()] = _string_list(language, value) if isinstance(value, list) else str(value)
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    missing = sorted(set(re.findall(r"@([A-Z_]+)@", text)))
    if missing:
        raise KeyError(f"unfilled placeholders in {language}/{kind}: {missing}")
    return text
