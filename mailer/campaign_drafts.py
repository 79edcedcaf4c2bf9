"""Working on a campaign before it goes out: edit a draft, reorder its notices, duplicate any.

Only a draft or a scheduled campaign changes; one that has started keeps
what its readers got (its ledger and notices are the record). A duplicate
is a new draft of an editor's, whatever it was copied from.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer import campaigns
from mailer.errors import CampaignNotFound, CampaignStateConflict, InvalidCampaign
from mailer.models import Campaign, CampaignKind, CampaignNotice, CampaignStatus, Notice, Topic

EDITABLE = {CampaignStatus.DRAFT, CampaignStatus.SCHEDULED}


def _editable(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id, with_for_update=True)
    if campaign is None:
        raise CampaignNotFound(f"no campaign with id {campaign_id}")
    if campaign.status not in EDITABLE:
        raise CampaignStateConflict(
            f"a campaign that is {campaign.status} cannot change any more; duplicate it instead"
        )
    if campaign.kind != CampaignKind.MANUAL:
        raise CampaignStateConflict("an automatic send is planned by mailer, not edited")
    return campaign


def _set_notices(session: Session, campaign_id: int, notice_ids: Sequence[int]) -> None:
    ordered = list(dict.fromkeys(notice_ids))
    if not ordered:
        raise InvalidCampaign("a campaign needs at least one notice")
    found = set(session.scalars(select(Notice.id).where(Notice.id.in_(ordered))))
    if missing := [str(notice_id) for notice_id in ordered if notice_id not in found]:
        raise InvalidCampaign(f"no notice with id {', '.join(missing)}")
    session.execute(delete(CampaignNotice).where(CampaignNotice.campaign_id == campaign_id))
    session.add_all(
        CampaignNotice(campaign_id=campaign_id, notice_id=notice_id, position=position)
        for position, notice_id in enumerate(ordered)
    )


def update_campaign(
    session: Session,
    campaign_id: int,
    *,
    subject: str,
    intro: str,
    notice_ids: Sequence[int],
    topics: Sequence[str],
) -> None:
    """Change a draft's (or a scheduled campaign's) subject, intro, notices and audience.

    Notices keep the order given (new ones after the ones it had).
    """
    campaign = _editable(session, campaign_id)
    subject = " ".join(subject.split())
    if not subject or len(subject) > 200:
        raise InvalidCampaign("the subject is required, at most 200 characters")
    if unknown := set(topics) - set(Topic):
        raise InvalidCampaign(f"unknown topic {', '.join(sorted(unknown))}")
    chosen = [topic.value for topic in Topic if topic.value in set(topics)]
    if not chosen:
        raise InvalidCampaign("choose at least one topic for the audience")
    before = [notice.id for notice in campaigns.campaign_notices(session, campaign_id)]
    kept = [notice_id for notice_id in before if notice_id in set(notice_ids)]
    _set_notices(session, campaign_id, kept + [n for n in notice_ids if n not in set(kept)])
    campaign.subject, campaign.intro, campaign.topics = subject, intro.strip(), ",".join(chosen)
    session.flush()


def move_notice(session: Session, campaign_id: int, notice_id: int, *, offset: int) -> None:
    """Move one notice of a draft up (offset -1) or down (+1) the digest."""
    _editable(session, campaign_id)
    order = [notice.id for notice in campaigns.campaign_notices(session, campaign_id)]
    if notice_id not in order:
        raise InvalidCampaign(f"notice {notice_id} is not in this campaign")
    index = order.index(notice_id)
    target = min(max(index + offset, 0), len(order) - 1)
    order.insert(target, order.pop(index))
    _set_notices(session, campaign_id, order)
    session.flush()


def duplicate_campaign(session: Session, campaign_id: int, *, now: datetime) -> int:
    """A new draft with the same subject, intro, notices (in order) and audience; its id."""
    source = session.get(Campaign, campaign_id)
    if source is None:
        raise CampaignNotFound(f"no campaign with id {campaign_id}")
    copy = Campaign(
        subject=source.subject,
        intro=source.intro,
        topics=source.topics,
        status=CampaignStatus.DRAFT,
        kind=CampaignKind.MANUAL,
        created_at=now,
    )
    session.add(copy)
    session.flush()
    _set_notices(
        session, copy.id, [notice.id for notice in campaigns.campaign_notices(session, campaign_id)]
    )
    session.flush()
    return copy.id


def delete_draft(session: Session, campaign_id: int) -> str:
    """Delete a draft or scheduled campaign (nothing was sent); return its subject."""
    campaign = _editable(session, campaign_id)
    subject = campaign.subject
    campaigns.delete_campaign(session, campaign_id)
    return subject
