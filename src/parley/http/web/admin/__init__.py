"""``/admin``: workspace settings, channel credentials, policies, journeys and their
templates, failed sends, the team, privacy requests and the audit log (admins only).

Every handler starts with ``admin(request)``, GET and POST alike, so an agent gets 403
whatever URL they type; the domain functions check the role again. To add a page, write
its handlers in a module here, its template under ``templates/admin/`` extending
``admin/_layout.html``, add it to ``common.SECTIONS`` and its routes below.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from parley.http.web.admin import audit, channels, failed, general, journeys, privacy, team


def admin_routes() -> list[BaseRoute]:
    return [
        Route("/admin", general.general_page, methods=["GET"]),
        Route("/admin/general", general.save_general, methods=["POST"]),
        Route("/admin/quiet-hours", general.save_quiet_hours, methods=["POST"]),
        Route("/admin/frequency-caps", general.save_frequency_caps, methods=["POST"]),
        Route("/admin/marketing-pause", general.save_marketing_pause, methods=["POST"]),
        Route("/admin/marketing-rate", general.save_marketing_rate, methods=["POST"]),
        Route("/admin/policies", general.policies_page, methods=["GET"]),
        Route("/admin/policies", general.save_policies, methods=["POST"]),
        Route("/admin/channels", channels.channels_page, methods=["GET"]),
        Route("/admin/channels", channels.connect, methods=["POST"]),
        Route("/admin/channels/{account_id}/secrets", channels.replace, methods=["POST"]),
        Route("/admin/channels/{account_id}/active", channels.set_active, methods=["POST"]),
        Route("/admin/channels/{account_id}/check", channels.check, methods=["POST"]),
        Route("/admin/shopify", channels.shopify_secret, methods=["POST"]),
        Route("/admin/email-sender", channels.save_email_sender, methods=["POST"]),
        Route("/admin/email-sender/check", channels.check_email_sender, methods=["POST"]),
        Route("/admin/email-sender/remove", channels.remove_email_sender, methods=["POST"]),
        Route("/admin/journeys", journeys.journeys_page, methods=["GET"]),
        Route("/admin/journeys/preview", journeys.preview, methods=["POST"]),
        Route("/admin/journeys/preview/email", journeys.email_preview, methods=["POST"]),
        Route("/admin/journeys/{key}", journeys.journey_page, methods=["GET"]),
        Route("/admin/journeys/{key}/enabled", journeys.set_enabled, methods=["POST"]),
        Route("/admin/journeys/{key}/timing", journeys.set_waits, methods=["POST"]),
        Route(
            "/admin/journeys/{key}/templates/{message}/{channel}",
            journeys.template_page,
            methods=["GET"],
        ),
        Route(
            "/admin/journeys/{key}/templates/{message}/{channel}",
            journeys.save_template,
            methods=["POST"],
        ),
        Route("/admin/failed", failed.failed_page, methods=["GET"]),
        Route("/admin/failed/retry", failed.retry_all, methods=["POST"]),
        Route("/admin/failed/{job_id}/retry", failed.retry_one, methods=["POST"]),
        Route("/admin/failed/held/{message_id}/arrived", failed.held_arrived, methods=["POST"]),
        Route(
            "/admin/failed/held/{message_id}/send-again",
            failed.held_send_again,
            methods=["POST"],
        ),
        Route("/admin/team", team.team_page, methods=["GET"]),
        Route("/admin/team/invite", team.invite, methods=["POST"]),
        Route("/admin/team/{user_id}/role", team.set_role, methods=["POST"]),
        Route("/admin/team/{user_id}/remove", team.remove, methods=["POST"]),
        Route("/admin/team/invites/{invite_id}/revoke", team.revoke_invite, methods=["POST"]),
        Route("/admin/privacy", privacy.privacy_page, methods=["GET"]),
        Route("/admin/privacy/{request_id}/export.json", privacy.download_export, methods=["GET"]),
        Route("/admin/audit", audit.audit_page, methods=["GET"]),
        Route("/admin/export/customers.csv", audit.export_customers, methods=["GET"]),
    ]
