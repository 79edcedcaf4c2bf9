"""Domain exceptions. The web and worker edges map each to a page, a status or a retry."""


class MailerError(Exception):
    """Base of every error the domain raises on purpose."""


class InvalidToken(MailerError):
    """A link token is forged, truncated, expired or made for another purpose."""


class InvalidAddress(MailerError):
    """An email address failed validation; the message is fit to show the reader."""


class CaptchaUnavailable(MailerError):
    """The CAPTCHA service could not be asked; signups fail closed meanwhile."""
