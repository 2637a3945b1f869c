#!/usr/bin/python3
"""Runs warden-keys-bench against a SoftHSM2 token and a swtpm TPM 2.0 (behind
tpm2-abrmd), each with its file-key baseline in the same run, and prints
the RESULT lines (docs/benchmarks.md, "Hardware-held keys").

    bench/keys/run.py [BUILD_DIR] [--seconds S]     (default build-bench, 3 s)
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

from hsm_fixture import SoftHsm  # noqa: E402
from tpm_fixture import SoftTpm  # noqa: E402


def main():
    args = sys.argv[1:]
    seconds = "3"
    if "--seconds" in args:
        i = args.index("--seconds")
        seconds = args[i + 1]
        del args[i:i + 2]
    build = args[0] if args else os.path.join(ROOT, "build-bench")
    binary = os.path.join(build, "bench", "warden-keys-bench")
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: build the Release bench build (scripts/bench, or cmake --build {build} "
                 "--target warden-keys-bench)")
    hsm = SoftHsm(label="bench")
    try:
        r = subprocess.run([binary, "sign", "--pkcs11-uri", hsm.uri("bench-issuing"), "--seconds", seconds],
                           env=hsm.env, capture_output=True, text=True)
        print(r.stdout.strip() or r.stderr.strip())
    finally:
        hsm.close()
    with SoftTpm() as tpm, tempfile.TemporaryDirectory() as d:
        env = dict(tpm.env)
        env.pop("OPENSSL_CONF", None)
        r = subprocess.run([binary, "tls", "--tpm", tpm.tcti, "--dir", d, "--seconds", seconds],
                           env=env, capture_output=True, text=True)
        print(r.stdout.strip() or r.stderr.strip())


if __name__ == "__main__":
    main()
