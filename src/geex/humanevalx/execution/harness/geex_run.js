// geex's JavaScript test harness: `node geex_run.js test.js` in the program's work directory.
//
// Prologue, program, epilogue (see geex/humanevalx/execution/proof.py): the secret is read from stdin before
// the program is loaded, and written to the report descriptor only once `require` of the program
// (whose test runs synchronously at the end of its module code) has returned without an exception.
// `process.exit(0)`, an 'exit' or 'uncaughtException' handler, or a `process.exitCode` rewrite
// all end the program without it.
//
// A CommonJS module may `return` from its top level, which would end the program's module code
// before its test, `require` returning normally: the program must also compile as a script (where
// such a return is a syntax error); one that compiles only as a function body is refused.
//
// console.assert becomes a strict, non-writable, non-configurable assert before the program loads,
// and assembly makes the test call a module-level `const` of the same strictness, which a
// completion can neither reassign nor redeclare. Everything lives in this closure: the program
// cannot name it (a sample that drives the inspector on purpose is an attack, not an early exit).
"use strict";
(() => {
  const fs = require("fs");
  const path = require("path");
  const vm = require("vm");
  const { AssertionError } = require("assert");
  const writeSync = fs.writeSync;
  const fdText = process.env.GEEX_PROOF_FD;
  let secret = null;
  let reportFd = -1;
  if (fdText !== undefined) {
    reportFd = Number(fdText);
    const byte = Buffer.alloc(1);
    const got = [];
    while (got.length < 256) {
      let n;
      try {
        n = fs.readSync(0, byte, 0, 1, null);
      } catch (e) {
        if (e.code === "EAGAIN") continue;
        throw e;
      }
      if (n === 0 || byte[0] === 10) break;
      got.push(byte[0]);
    }
    secret = Buffer.from(got);
  }
  const strict = function assert(ok, ...msg) {
    if (!ok) {
      throw new AssertionError({ message: "console.assert failed" + (msg.length ? ": " + msg.join(" ") : "") });
    }
  };
  Object.defineProperty(console, "assert", { value: strict, writable: false, configurable: false, enumerable: true });
  const program = path.resolve(process.argv[2] || "test.js");
  const source = fs.readFileSync(program, "utf8");
  let scriptError = null;
  try {
    new vm.Script(source, { filename: program });
  } catch (e) {
    scriptError = e;
  }
  if (scriptError !== null) {
    let functionBody = true;
    try {
      vm.compileFunction(source, ["exports", "require", "module", "__filename", "__dirname"], { filename: program });
    } catch (e) {
      functionBody = false; // a plain syntax error: require reports it as usual
    }
    if (functionBody) {
      throw new Error("geex: the program ends its module code early (" + scriptError.message +
        "), before its test could run");
    }
  }
  require(program);
  if (secret !== null && secret.length > 0) {
    writeSync(reportFd, secret);
  }
})();
