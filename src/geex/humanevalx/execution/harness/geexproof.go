// Package geexproof is geex's Go test harness (see geex/humanevalx/execution/proof.py).
//
// The sample's package imports it (blank import added by the Go runner), so its init reads the
// secret from stdin before any init or package-level variable of the sample runs. The generated
// test main calls Report only after m.Run() returned 0 and every test function returned; an
// os.Exit in an init, a test or a goroutine never gets there. The sample cannot name this package:
// it can import only what assembly gives it, and go:linkname needs "unsafe".
package geexproof

import (
	"os"
	"strconv"
)

var (
	secret []byte
	report *os.File
)

func init() {
	fd, err := strconv.Atoi(os.Getenv("GEEX_PROOF_FD"))
	if err != nil {
		return
	}
	var line []byte
	b := make([]byte, 1)
	for len(line) < 256 {
		n, err := os.Stdin.Read(b)
		if n == 0 || err != nil || b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	secret = line
	report = os.NewFile(uintptr(fd), "geex-proof")
}

// Report writes the secret to the report channel (called by the generated test main only).
func Report() {
	if report != nil && len(secret) > 0 {
		report.Write(secret)
	}
}
