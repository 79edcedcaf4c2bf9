"""Outbound webhooks: events announced to other systems, signed per Standard Webhooks.

`mailer.events.record` writes the outbox in the domain's transaction;
`endpoints` is what admins set up in the console; `delivery` claims, signs,
POSTs (through mailer.safe_http: the feeds' SSRF rules) and retries.
"""
