"""fleetwarden's host-side worker tool, split by subcommand (roles/worker_service installs it on every host).

common     paths, the journal's priorities, the declaration, docker and systemctl calls
health     the gRPC health check (python3-grpcio) and the TCP check
supervise  the worker unit's main process
deaths     the record of each container death, kept before the unit replaces the container
probe      the liveness probe service
settle     recovery's verdict: healthy through a settle window
alert      the OnFailure= hook
waiting    wait-for and ray-ready
cli        the command line (the fleetwarden-worker script calls cli.main)

Standard library and Debian's python3-grpcio only: hosts get nothing from PyPI.
"""
