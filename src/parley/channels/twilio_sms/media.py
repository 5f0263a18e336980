"""A Twilio media URL, with the login Twilio may ask for.

MMS media URLs look like ``{api}/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/
Media/{MediaSid}``. An account with "HTTP Basic Authentication for media access" on
answers them only with the account SID and auth token; every account accepts them. The
login goes only to the configured Twilio API, and only for the account that holds the
token: a URL in a message can never carry it to another host or another account.
"""

from __future__ import annotations

import base64
import re

from parley.channels.media import Download

_ACCOUNT = re.compile(r"([^/?#]+)/Messages/")


def media_download(
    url: str, *, base_url: str, auth_token: str, account_sid: str | None
) -> Download:
    """``url`` with Basic auth when it is media of the token's account on the Twilio API;
    otherwise as it is.

    ``account_sid`` is the account's SID when parley holds it. A store account that only
    receives holds just its auth token; its webhooks, signed with that token, are the
    ones that named the URL, so the URL's own account is the token's.
    """
    accounts = f"{base_url.rstrip('/')}/2010-04-01/Accounts/"
    named = _ACCOUNT.match(url[len(accounts) :]) if url.startswith(accounts) else None
    if named is None:
        return Download(url=url)
    sid = named.group(1)
    if account_sid is not None and sid != account_sid:
        return Download(url=url)
    login = base64.b64encode(f"{sid}:{auth_token}".encode()).decode()
    return Download(url=url, headers={"Authorization": f"Basic {login}"})
