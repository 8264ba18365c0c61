"""The deploy, health and version commands of the nginx tests' ``command`` target.

    python3 instancectl.py deploy 127.0.0.1:PORT VERSION
    python3 instancectl.py health 127.0.0.1:PORT
    python3 instancectl.py version 127.0.0.1:PORT

Each sends one request to a running ``service.py`` and exits 1 with the error when
it fails.
"""

from __future__ import annotations

import sys
import urllib.request


def main(argv: list[str]) -> int:
    action, instance = argv[0], argv[1]
    url = f"http://{instance}"
    if action == "deploy":
        request = urllib.request.Request(f"{url}/version", data=argv[2].encode(), method="PUT")
    elif action == "health":
        request = urllib.request.Request(f"{url}/healthz")
    else:
        request = urllib.request.Request(f"{url}/version")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            print(response.read().decode().strip())
    except OSError as exc:
        print(f"{action} {instance} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
