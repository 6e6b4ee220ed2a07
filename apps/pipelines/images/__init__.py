"""Daemonless image builds: a Dockerfile's non-RUN instructions written as OCI layers and pushed to
a registry over the distribution API (dockerfile.py parses, oci.py writes, registry.py talks)."""
