"""Where staff may work from: the client address of a request or socket, and the allowlists.

The client address is the peer's, unless TRUSTED_PROXY_COUNT proxies sit in front of the app:
then it is the entry that the outermost trusted proxy appended to X-Forwarded-For. Each proxy
appends the address it received the request from, so with N trusted proxies the client is the
N-th entry from the right; anything further left was written by the client and proves nothing.
With the default of 0 the header is never read, so nobody can choose their own address.

Allowlists: the global list (rules with no role) and one list per role (a Django group name;
superusers count as "Administrator"). A list with no enabled rule is open. An address is allowed
when every list that applies to the user allows it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from compliance.models import IPAllowRule

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_ip_from(*, peer: str | None, forwarded_for: str | None) -> str | None:
    count = settings.TRUSTED_PROXY_COUNT
    if count > 0 and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if len(hops) >= count:
            return _valid_ip(hops[-count])
        # Fewer entries than trusted proxies: the request did not come through all of them, so
        # the leftmost entry is as far as anything trusted reaches.
        return _valid_ip(hops[0]) if hops else _valid_ip(peer)
    return _valid_ip(peer)


def client_ip(request: Any) -> str | None:
    """The client address of a Django request (also django-axes' AXES_CLIENT_IP_CALLABLE)."""
    return client_ip_from(
        peer=request.META.get("REMOTE_ADDR"), forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR")
    )


def client_ip_of_scope(scope: Mapping[str, Any]) -> str | None:
    """The client address of an ASGI scope (a staff socket)."""
    client = scope.get("client") or (None, None)
    forwarded = [
        value.decode("latin1")
        for name, value in scope.get("headers", [])
        if name == b"x-forwarded-for"
    ]
    return client_ip_from(peer=client[0], forwarded_for=",".join(forwarded) or None)


def _valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


@dataclass(frozen=True)
class Rule:
    network: Network
    role: str


def roles_of(user: Any) -> set[str]:
    roles = set(user.groups.values_list("name", flat=True))
    if user.is_superuser:
        roles.add("Administrator")
    return roles


def enabled_rules() -> list[Rule]:
    return [
        Rule(network=ipaddress.ip_network(network, strict=False), role=role)
        for network, role in IPAllowRule.objects.filter(enabled=True).values_list("network", "role")
    ]


def refusing_list(*, roles: Iterable[str], ip: str | None, rules: Iterable[Rule]) -> str | None:
    """The name of the first list that refuses `ip` ("global" or a role), or None if allowed."""
    by_scope: dict[str, list[Network]] = {}
    for rule in rules:
        by_scope.setdefault(rule.role, []).append(rule.network)
    address = ipaddress.ip_address(ip) if ip else None
    for scope in ["", *sorted(set(roles))]:
        networks = by_scope.get(scope)
        if not networks:
            continue
        if address is None or not any(_contains(net, address) for net in networks):
            return scope or "global"
    return None


def _contains(network: Network, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.version == network.version and address in network


def refusal_for(*, user: Any, ip: str | None) -> str | None:
    """Which list refuses this user at this address, or None. Reads the rules (one query) and,
    only when role rules exist, the user's groups."""
    rules = enabled_rules()
    if not rules:
        return None
    roles = roles_of(user) if any(rule.role for rule in rules) else set()
    return refusing_list(roles=roles, ip=ip, rules=rules)
