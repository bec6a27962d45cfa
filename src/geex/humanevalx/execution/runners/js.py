"""JavaScript: node, with js-md5 (JavaScript/162) from geex's cache, running ``test.js`` through geex's
harness script (``harness/geex_run.js``: proof of completion, a strict frozen ``console.assert``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from geex.humanevalx.execution.cache import cache_root
from geex.humanevalx.execution.runners.base import Runner, ToolStatus, tool_output
from geex.humanevalx.execution.sandbox import ExecResult

JS_MD5_VERSION = "0.7.3"  # the version the original Docker image pinned


def node_modules() -> Path:
    return cache_root() / "node" / "node_modules"


class JsRunner(Runner):
    language = "js"
    source_name = "test"
    install_hint = f"apt-get install nodejs npm; npm install --prefix {cache_root() / 'node'} js-md5@{JS_MD5_VERSION}"

    def status(self) -> ToolStatus:
        node = shutil.which("node")
        version = tool_output([node, "--version"]) if node else None
        if version is None:
            return ToolStatus(False, "", "node not found", self.install_hint)
        md5 = node_modules() / "js-md5" / "package.json"
        if md5.is_file():
            version += f", js-md5 {json.loads(md5.read_text()).get('version', '?')}"
        else:
            return ToolStatus(True, f"node {version} (js-md5 missing)", "js-md5 missing", self.install_hint)
        return ToolStatus(True, f"node {version}")

    proof_files = proof_scripts = ("geex_run.js",)

    def run_argv(self, workdir: Path) -> list[str]:
        return [shutil.which("node") or "node", "geex_run.js", "test.js"]

    def run_env(self) -> dict[str, str]:
        return {"NODE_PATH": str(node_modules())}

    def run_ro_binds(self) -> tuple[Path, ...]:
        return (node_modules(),) if node_modules().is_dir() else ()

    def harness_fault(self, result: ExecResult) -> str | None:
        # only when js-md5 really is missing: a program can print the message itself
        if "Cannot find module 'js-md5'" in result.stderr and not (node_modules() / "js-md5").is_dir():
            return f"js-md5 is not installed: {self.install_hint}"
        return super().harness_fault(result)
