"""The registry: every resource, in the order its changes and handlers run.

Order matters for handlers: maps are rebuilt before Postfix reloads; postgrey listens before Postfix
asks it; OpenDKIM signs before Postfix hands it mail; Postfix starts before Dovecot (it creates
/var/spool/postfix/private, where Dovecot's auth socket goes). Adding a capability = one module here + its
templates + its tests. SITE_REGISTRY holds what the whole site
shares (its DNS zone).
"""

from __future__ import annotations

from typing import Any

from mailprov.resources.accounts import AccountsResource
from mailprov.resources.base import Resource, SiteResource
from mailprov.resources.certificate import CertificateResource
from mailprov.resources.dkim import OpenDkimResource
from mailprov.resources.dns import DnsResource
from mailprov.resources.dovecot import Dovecot
from mailprov.resources.firewall import Firewall
from mailprov.resources.maps import MapsResource
from mailprov.resources.packages import Packages
from mailprov.resources.postfix import Postfix
from mailprov.resources.postgrey import Postgrey
from mailprov.resources.repositories import Repositories
from mailprov.resources.services import Services

REGISTRY: tuple[Resource[Any], ...] = (
    Repositories(),  # EL: EPEL and archived repositories, ready before anything is installed
    Packages(),
    AccountsResource(),
    CertificateResource(),
    MapsResource(),
    Firewall(),
    Postgrey(),
    OpenDkimResource(),
    Postfix(),
    Dovecot(),
    Services(),
)
BY_NAME = {r.name: r for r in REGISTRY}

# Resources of the whole site, kept outside the hosts (the DNS zone): planned from the records the hosts'
# resources return, applied from this machine after every host's apply.
SITE_REGISTRY: tuple[SiteResource[Any], ...] = (DnsResource(),)
