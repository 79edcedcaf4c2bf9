"""Domain exceptions. The web and worker edges map each to a page, a status or a retry."""


class MailerError(Exception):
    """Base of every error the domain raises on purpose."""


class InvalidToken(MailerError):
    """A link token is forged, truncated, expired or made for another purpose."""


class InvalidAddress(MailerError):
    """An email address failed validation; the message is fit to show the reader."""


class CaptchaUnavailable(MailerError):
    """The CAPTCHA service could not be asked; signups fail closed meanwhile."""


class InvalidNotice(MailerError):
    """A notice's fields are incomplete or malformed; the message names the field."""


class InvalidCampaign(MailerError):
    """A campaign cannot be created or moved to the asked state; the message says why."""


class CampaignNotFound(InvalidCampaign):
    """No campaign has that id."""


class CampaignStateConflict(InvalidCampaign):
    """The action does not apply in the campaign's current state (pause a draft, ...)."""


class InvalidFeed(MailerError):
    """A feed cannot be added: its URL or kind is wrong, or it is there already."""


class InvalidTokenName(MailerError):
    """A token's name is empty or too long; the message says which."""


class SubscriberNotFound(MailerError):
    """No subscriber has that id or address."""

    def __str__(self) -> str:
        return f"no subscriber {self.args[0]}"


class AddressChangeRefused(MailerError):
    """A new address cannot replace the old one; the message is fit to show the reader."""


class InvalidImportFile(MailerError):
    """The file cannot be read as the import's CSV; nothing was imported. Says why."""


class InvalidFilter(MailerError):
    """A state or topic that does not exist; the message names it."""


class SubscriberConflict(MailerError):
    """The address is a subscriber already, or suppressed, or the change does not fit the
    subscriber's state; the message says which."""


class SubscriberRefused(MailerError):
    """What was given for a subscriber is unusable (an invalid address or name); says why."""


class AddressLimited(MailerError):
    """The address had its share of confirmation-type mail (per hour and per day)."""


class SiteNotReady(InvalidCampaign):
    """Nothing may be sent yet: the site has no postal address (CAN-SPAM). Says where to set it."""


class InvalidSiteSettings(MailerError):
    """A site setting is malformed; `field` names it and the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
