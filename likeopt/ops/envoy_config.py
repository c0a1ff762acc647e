"""``python -m likeopt.ops.envoy_config OUT_DIR [ACCESS_LOG_PATH]``: Envoy's configuration from the environment.

docker-compose and Kubernetes run this as an init step, so their Envoy reads the very file ``likeopt up`` would
write for the same settings (likeopt.ops.envoy builds it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from likeopt.ops.envoy.build import write_envoy_config
from likeopt.runtime.config import ENVOY, settings_or_exit


def arguments(argv: list[str]) -> argparse.Namespace:
    """The folder and log path; ``--help`` answers and an unknown option is refused (exit 2) rather than taken
    for a folder to create."""
    parser = argparse.ArgumentParser(
        prog="python -m likeopt.ops.envoy_config",
        description="Render Envoy's configuration from the LIKEOPT_* environment into OUT_DIR/envoy.yaml.",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="folder to write envoy.yaml into")
    parser.add_argument(
        "access_log", metavar="ACCESS_LOG_PATH", nargs="?", help="where Envoy writes its access log (/dev/stdout)"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Render into OUT_DIR/envoy.yaml, the access log going to ACCESS_LOG_PATH (e.g. /dev/stdout) if given."""
    args = arguments(argv)
    path = write_envoy_config(settings_or_exit(ENVOY), args.out_dir, args.access_log)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
