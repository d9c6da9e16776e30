"""mailprov: declarative Postfix + Dovecot provisioning over SSH."""

__version__ = "0.1.0"
