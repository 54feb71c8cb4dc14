"""The demo fleet inside the local stack: within a bounded time the status page shows every kind of state."""

from __future__ import annotations

import os
import time
import uuid

import requests

from local.emulator import free_port
from local.stack import launched

#: States the fleet must make visible, each at least once while the test watches.
EXPECTED = {"parsing", "parseError", "postProcessing", "complete", "failed"}


def test_fleet_shows_every_kind_of_state(emulator_host: str, gcs_url: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": emulator_host,
        "GOOGLE_CLOUD_PROJECT": f"demo-{uuid.uuid4().hex[:12]}",
        "STORAGE_EMULATOR_HOST": gcs_url,
        "FLEET": "3",
        "DEMO_TIMEOUT": "4s",
        "MAINTAIN_INTERVAL": "1",
        "POSTPROCESS_INTERVAL": "1",
        "RETRY_BACKOFF": "2s",
    }
    env.pop("GARDENER_CONFIG", None)
    seen: set[str] = set()
    attempts: list[int] = []
    with launched(env, port) as (base, output):
        assert any("Demo fleet: 3 simulated parsers (tracker timeout 4s)" in x for x in output)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and not (
            seen >= EXPECTED and max(attempts, default=1) > 1
        ):
            jobs = requests.get(f"{base}/status?format=json", timeout=10).json()["Jobs"]
            seen |= {j["State"] for j in jobs}
            attempts += [j.get("Attempts", 1) for j in jobs]
            time.sleep(0.3)
        assert seen >= EXPECTED, f"seen only {sorted(seen)}"
        assert max(attempts) > 1, "no failed job was handed out again"
