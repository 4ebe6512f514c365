"""``ocd keys``: make a CurveZMQ key pair for OCD or for a client (docs/curve.md).

Prints (or writes, owner-only, with ``-o``) the two lines of a ``[security]``
section: ``ocd_public_key``/``ocd_secret_key`` with ``--for ocd``,
``client_public_key``/``client_secret_key`` with ``--for client``. A ``$`` in
a key is written ``$$`` there (a single ``$`` starts ``${NAME}``); the raw
key follows on a comment line, for an environment variable.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from datetime import datetime, timezone
from typing import Any

from ocd.config import Config

EXIT_OK, EXIT_USAGE = 0, 2


def add_parser(subparsers: Any, sub: Any, add_config: Any) -> None:
    parser = sub(subparsers, "keys",
                 "Make a CurveZMQ key pair for OCD or for a client of OCD (allow_hetdex, config "
                 "send, run_shot -e, db_replay): lines for the [security] section of the "
                 "configuration.", epilog=None)
    parser.set_defaults(command_module="keys")
    parser.add_argument("--for", dest="role", choices=["ocd", "client"], default="client",
                        help="Whose key pair: OCD's (ocd_public_key, ocd_secret_key) or a "
                             "client's (client_public_key, client_secret_key)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="Write the lines to FILE (created with mode 0600; never "
                             "overwritten) instead of printing them")


def key_lines(role: str, public: bytes, secret: bytes, when: datetime) -> str:
    from ocd.protocols.curve import config_text

    lines = [f"# CurveZMQ key pair for {'OCD' if role == 'ocd' else 'a client'}, made by "
             f"`ocd keys` on {when:%Y-%m-%d %H:%M} UTC. Keep the secret key secret.",
             "[security]"]
    for name, key in (("public_key", public), ("secret_key", secret)):
        lines.append(f"{role}_{name} = {config_text(key)}")
        if b"$" in key:
            lines.append(f"#   raw, for an environment variable: {key.decode('ascii')}")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.protocols.curve import new_key_pair

    public, secret = new_key_pair()
    text = key_lines(args.role, public, secret, datetime.now(timezone.utc))
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    if not args.output:
        print("ocd keys: -o needs a file name", file=sys.stderr)
        return EXIT_USAGE
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        exists = exc.errno == errno.EEXIST
        kind = "a folder" if os.path.isdir(args.output) else "a file"
        print(f"ocd keys: cannot create {args.output}: "
              + (f"it exists ({kind}): keys are never overwritten" if exists else exc.strerror),
              file=sys.stderr)
        return EXIT_USAGE
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)
    print(f"ocd keys: wrote the {args.role} key pair to {args.output} (mode 0600)",
          file=sys.stderr)
    return EXIT_OK
