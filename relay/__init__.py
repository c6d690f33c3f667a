"""On-premises provisioning relay and its embedded control plane."""

__version__ = "0.1.0"
