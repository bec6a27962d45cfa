"""Rust: plain rustc against prebuilt rlibs of rand, regex and md5 (Debian's vendored crates).

The crates are built once per toolchain with cargo (offline, from /usr/share/cargo/registry);
every sample is then one ``rustc --test`` call instead of a cargo build (the original shared one
crate between all samples, so concurrent samples overwrote each other's files).
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path

from geex.humanevalx.execution.runners.base import ExecResult, RunContext, Runner, ToolStatus, tool_output

REGISTRY = Path("/usr/share/cargo/registry")
CRATES = {"rand": "0.8", "regex": "1", "md5": "0.7"}  # HumanEval-X declarations `use rand::Rng`


def _sysroot() -> Path | None:
    out = tool_output(["rustc", "--print", "sysroot"])
    return Path(out) if out else None


class RustRunner(Runner):
    language = "rust"
    # regex's default features pull aho-corasick and memchr through librust-regex+default-dev, which
    # --no-install-recommends leaves out (cargo then fails: "no matching package named `aho-corasick`")
    install_hint = ("apt-get install --no-install-recommends rustc cargo librust-rand-dev librust-regex-dev "
                    "librust-regex+default-dev librust-md5-dev (or: bash scripts/setup.sh)")

    def status(self) -> ToolStatus:
        sysroot = _sysroot()
        if sysroot is None or not (sysroot / "bin" / "rustc").exists():
            return ToolStatus(False, "", "rustc not found", self.install_hint)
        version = tool_output([str(sysroot / "bin" / "rustc"), "--version"]) or "rustc ?"
        if shutil.which("cargo") is None:
            return ToolStatus(False, version, "cargo not found (needed once, to build the crates)", self.install_hint)
        have = {p.name.rsplit("-", 1)[0]: p.name for p in REGISTRY.glob("*-*")} if REGISTRY.is_dir() else {}
        missing = [c for c in CRATES if c not in have]
        if missing:
            return ToolStatus(False, version, f"crates {', '.join(missing)} missing from {REGISTRY}", self.install_hint)
        return ToolStatus(True, f"{version}; " + ", ".join(have[c] for c in CRATES))

    @property
    def rustc(self) -> Path:
        return self._sysroot / "bin" / "rustc"

    @functools.cached_property
    def std_dir(self) -> Path | None:
        """Where the toolchain's libstd-*.so lives, if it ships one: test binaries then link std
        dynamically (a third less compile time); otherwise statically."""
        found = next((self._sysroot / "lib" / "rustlib").glob("*/lib/libstd-*.so"), None)
        return found.parent if found else None

    @property
    def crate_dir(self) -> Path:
        return self.cache_dir() / f"crates-{self.toolchain_key()}"

    def _prepare(self, sandbox) -> None:
        self._sysroot = _sysroot()
        manifest = self.crate_dir / "externs.json"
        if manifest.is_file():
            self._externs = json.loads(manifest.read_text())
            return
        d = self.crate_dir
        (d / "src").mkdir(parents=True, exist_ok=True)
        (d / ".cargo").mkdir(exist_ok=True)
        deps = "\n".join(f'{k} = "{v}"' for k, v in CRATES.items())
        (d / "Cargo.toml").write_text(
            f'[package]\nname = "geex-deps"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n{deps}\n'
        )
        (d / "src" / "lib.rs").write_text("")
        (d / ".cargo" / "config.toml").write_text(
            '[source.crates-io]\nreplace-with = "debian-packages"\n'
            f'[source.debian-packages]\ndirectory = "{REGISTRY}"\n[net]\noffline = true\n'
        )
        r = subprocess.run(
            ["cargo", "build", "--release", "--message-format=json"], cwd=d, capture_output=True,
            text=True, timeout=900,
        )
        if r.returncode != 0:
            raise RuntimeError(f"building crates failed: {r.stderr[-800:]}")
        externs = {}
        for line in r.stdout.splitlines():
            msg = json.loads(line)
            if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] in CRATES:
                externs[msg["target"]["name"]] = next(f for f in msg["filenames"] if f.endswith(".rlib"))
        if set(externs) != set(CRATES):
            raise RuntimeError(f"crates not built: {set(CRATES) - set(externs)}")
        self._externs = externs
        manifest.write_text(json.dumps(externs))
        for p in [d, *d.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)

    def compile(self, workdir: Path, ctx: RunContext) -> ExecResult:
        deps = Path(next(iter(self._externs.values()))).parent
        argv = [str(self.rustc), "--edition", "2021", "--test", "-C", "opt-level=0", "-C", "debuginfo=0",
                *(["-C", "prefer-dynamic"] if self.std_dir else []), "--cap-lints", "allow",
                "-L", f"dependency={deps}",
                *[a for name, path in self._externs.items() for a in ("--extern", f"{name}={path}")],
                "main.rs", "-o", "main"]
        return ctx.sandbox.run(argv, cwd=workdir, limits=self.compile_limits, uid=ctx.uid,
                               ro_binds=(self._sysroot, deps))

    def required_paths(self) -> tuple[Path, ...]:
        return (self._sysroot, Path(next(iter(self._externs.values()))).parent)

    def run_env(self) -> dict[str, str]:
        return {"LD_LIBRARY_PATH": str(self.std_dir)} if self.std_dir else {}

    def run_ro_binds(self) -> tuple[Path, ...]:
        return (self.std_dir,) if self.std_dir else ()

    def run_argv(self, workdir: Path) -> list[str]:
        return ["./main", "--test-threads=1"]
