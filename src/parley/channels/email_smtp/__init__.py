"""Email handed to any SMTP relay (Postfix, SES, Postmark, the sandbox)."""
