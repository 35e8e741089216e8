"""`python -m dbrepl.sandbox aws PORT ROOT`: the sandbox's moto server (ROOT marks the command line)."""

import sys

from dbrepl.sandbox.moto import serve_aws

if len(sys.argv) != 4 or sys.argv[1] != "aws":
    sys.exit("usage: python -m dbrepl.sandbox aws PORT ROOT")
serve_aws(int(sys.argv[2]))
