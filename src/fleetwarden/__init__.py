"""fleetwarden: provisioning and self-healing for fleets of GPU and TPU hosts."""

__version__ = "0.1.0"
