"""Is a host this machine? Plain http is allowed only to loopback addresses (webhooks,
subscription endpoints), so the answer must not be fooled by names other than localhost."""

import ipaddress


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP literal (127.0.0.0/8, ::1); any other name is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
