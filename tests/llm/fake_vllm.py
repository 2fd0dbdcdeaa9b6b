"""A stand-in for `python -m vllm.entrypoints.openai.api_server`: it answers /health (404 elsewhere) on
`--host` and `--port`, and starts a child process, as vLLM's engine core is a child of its API server.
For the managed server's own rules (start, restart, stop); the real vLLM server goes through the same
code in test_llm_vllm_server.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

SERVER = textwrap.dedent("""
    import argparse, subprocess, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--fail", action="store_true")
    args, _ = parser.parse_known_args()
    print("fake vLLM starting", flush=True)
    if args.fail:
        print("ValueError: head size 80 is not supported", flush=True)
        sys.exit(3)
    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # like vLLM's engine core
    with open(sys.argv[0] + ".children", "a") as f:
        f.write(f"{engine.pid}\\n")
    time.sleep(0.5)

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
        def log_message(self, *a):
            pass

    HTTPServer((args.host, args.port), Health).serve_forever()
""")


def install(folder: Path) -> Path:
    """The stand-in as the `vllm` package in `folder`, which goes first on the server's PYTHONPATH; the file
    its children's PIDs are written to."""
    module = folder / "vllm" / "entrypoints" / "openai"
    module.mkdir(parents=True)
    for package in (folder / "vllm", folder / "vllm" / "entrypoints", module):
        (package / "__init__.py").write_text("")
    (module / "api_server.py").write_text(SERVER)
    return module / "api_server.py.children"
