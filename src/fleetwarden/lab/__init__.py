"""The lab: real hosts (systemd, dockerd, sshd) as containers on this machine."""
