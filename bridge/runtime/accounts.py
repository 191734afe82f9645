"""The carrier accounts a call may act through: the organization's own, else the server's."""

from __future__ import annotations

from bridge.carriers.twilio.rest import TwilioCalls
from bridge.journal.models import DEFAULT_ORG
from bridge.runtime.services import Services

__all__ = ["twilio_account"]


async def twilio_account(services: Services, org: str) -> TwilioCalls | None:
    """The organization's Twilio account (its stored credential; for the default organization
    also ``TWILIO_ACCOUNT_SID`` / ``TWILIO_AUTH_TOKEN``), or None."""
    control, box, http = services.control, services.secrets, services.twilio_http
    if http is None:
        return None
    fields = None
    if control is not None and box is not None:
        fields = await control.credential_fields(org, "twilio", box)
    if fields is not None:
        return TwilioCalls(fields["account_sid"], fields["auth_token"], http)
    settings = services.settings
    if org == DEFAULT_ORG and settings.twilio_account_sid and settings.twilio_auth_token:
        return TwilioCalls(settings.twilio_account_sid, settings.twilio_auth_token, http)
    return None
