"""`make screenshots`: docs/dashboard.png, the REST API's dashboard in headless Chromium.

Starts `envspec serve --no-auth` on a free loopback port against the cluster of
$KUBECONFIG, creates two environments through the API, takes the screenshot once they
are ready, deletes them and stops the server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

OUT = Path(__file__).resolve().parent / "dashboard.png"
ENVIRONMENTS = {
    "checkout-pr-42": {"app_image": "checkout:pr-42", "app_port": 8000, "database": "postgresql"},
    "search-main": {"app_image": "search:1.4", "app_port": 9200, "database": "redis", "ttl_minutes": 240},
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed (Debian package chromium)", file=sys.stderr)
        return 1
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "envspec", "serve", "--no-auth", "--port", str(port)])
    base = f"http://127.0.0.1:{port}"
    api = f"{base}/api/v1/k8s-execution"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{api}/health", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        with httpx.Client(base_url=api, timeout=180) as client:
            for execution_id, config in ENVIRONMENTS.items():
                client.post("/environments", json={"execution_id": execution_id, "config": config}).raise_for_status()
            for execution_id in ENVIRONMENTS:
                client.get(f"/environments/{execution_id}", params={"wait": 120}).raise_for_status()
            shot = subprocess.run(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--window-size=1200,520",
                    f"--screenshot={OUT}",
                    f"{base}/",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            for execution_id in ENVIRONMENTS:
                client.delete(f"/environments/{execution_id}")
            for execution_id in ENVIRONMENTS:
                client.get(f"/environments/{execution_id}", params={"wait": 120})
        if shot.returncode != 0:
            print(shot.stderr, file=sys.stderr)
            return 1
        print(f"wrote {OUT}")
        return 0
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    sys.exit(main())
