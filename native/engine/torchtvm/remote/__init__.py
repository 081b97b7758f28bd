"""Measuring beyond this machine with TVM's own RPC tracker and servers.

`server`: `torchtvm rpc-server`, TVM's RPC server with the runtime library loaded and two functions
registered (its CPU, its name), so the workbench can build for the CPU it measures on.
`fleet`: the tracker's queues, the servers of a key and the target they agree on.
`runner`: MetaSchedule's RPCRunner, with an upload hook that notes which server measured a trial.

TVM's RPC protocol has no authentication: anyone who can reach a server's port can upload and run
code there. Servers bind to loopback unless told otherwise.
"""
