"""``python -m likeopt.ops.envoy_config OUT_DIR [ACCESS_LOG_PATH]``: Envoy's configuration from the environment.

docker-compose and Kubernetes run this as an init step, so their Envoy reads the very file ``likeopt up`` would
write for the same settings (likeopt.ops.envoy builds it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from likeopt.ops.envoy.build import write_envoy_config
from likeopt.runtime.config import ENVOY, settings_or_exit

USAGE = "usage: python -m likeopt.ops.envoy_config OUT_DIR [ACCESS_LOG_PATH]"


def main(argv: list[str]) -> int:
    """Render into OUT_DIR/envoy.yaml, the access log going to ACCESS_LOG_PATH (e.g. /dev/stdout) if given."""
    if not 1 <= len(argv) <= 2:
        print(USAGE, file=sys.stderr)
        return 2
    path = write_envoy_config(settings_or_exit(ENVOY), Path(argv[0]), argv[1] if len(argv) == 2 else None)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
