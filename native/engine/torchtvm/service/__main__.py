"""`python -m torchtvm.service`: the engine's JSON-lines RPC server on stdio (see rpc_server.py)."""

from torchtvm.service.rpc_server import main

main()
