"""Which network addresses a tenant's URL may reach: one rule for every place the console connects
on a tenant's behalf (repository clones, notification webhooks)."""

from __future__ import annotations

import ipaddress


def why_not_public(address: str) -> str | None:
    """Why this address is not one tenants may reach, or None when it is public. An IPv6 scope
    (`fe80::1%eth0`) is ignored; an IPv4 address carried in IPv6 (mapped, 6to4) is judged as IPv4."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return "a private address"
    return None
