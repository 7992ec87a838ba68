"""KSS requests and answers as plain values: the SOAP layer parses XML into these and renders them back;
the rules take and return only these. Times are timezone-aware UTC (the SOAP layer reads zone-less times in
the partner's time zone). ``None`` for an end time means ``indefinite``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# ---------------------------------------------------------------- request items (one per unit)


@dataclass(frozen=True)
class Activate:
    unit_id: int
    subscriber_id: str
    start_time: dt.datetime
    end_time: dt.datetime | None  # None = indefinite
    product_id: str
    license_count: int = 1
    activation_type: str = "Standard"  # Standard | Secondary
    trial_days: int | None = None  # ext:TrialDays
    customer_id: str | None = None  # ext:CustomerId (default: the subscriber)


@dataclass(frozen=True)
class Renew:
    unit_id: int
    subscriber_id: str
    end_time: dt.datetime | None  # None = indefinite


@dataclass(frozen=True)
class SoftCancel:
    unit_id: int
    subscriber_id: str
    end_time: dt.datetime


@dataclass(frozen=True)
class HardCancel:
    unit_id: int
    subscriber_id: str
    end_time: dt.datetime


@dataclass(frozen=True)
class Pause:
    unit_id: int
    subscriber_id: str
    pause_time: dt.datetime
    resume_time: dt.datetime | None = None  # ext:ResumeTime: a pause for a term


@dataclass(frozen=True)
class Resume:
    unit_id: int
    subscriber_id: str


@dataclass(frozen=True)
class GetInfo:
    unit_id: int
    subscriber_id: str
    sections: tuple[str, ...] = ("Subscription",)  # "Subscription" and/or "SubscriptionUsage"


@dataclass(frozen=True)
class GetDownloadLinks:
    unit_id: int
    subscriber_id: str
    language: str
    platform: str  # Windows | macOS | Android | iOS
    alphabet: str | None = None
    region: str | None = None
    rebranding_code: str | None = None


@dataclass(frozen=True)
class ChangeLicenseCount:  # ext:ChangeLicenseCount
    unit_id: int
    subscriber_id: str
    license_count: int


@dataclass(frozen=True)
class ChangeProduct:  # ext:ChangeProduct
    unit_id: int
    subscriber_id: str
    product_id: str


Item = (
    Activate
    | Renew
    | SoftCancel
    | HardCancel
    | Pause
    | Resume
    | GetInfo
    | GetDownloadLinks
    | ChangeLicenseCount
    | ChangeProduct
)


def kind(item: Item) -> str:
    """The item's element name: ``Activate``, ``ChangeLicenseCount``, ..."""
    return type(item).__name__


@dataclass(frozen=True)
class RequestContainer:
    timestamp: dt.datetime
    transaction_id: str
    items: tuple[Item, ...]  # in document order: items are applied in that order


# ---------------------------------------------------------------- answers


@dataclass(frozen=True)
class SubscriptionInfo:
    status: str  # NotStarted | Started | Paused | SoftCancelled | HardCancelled
    status_change_time: dt.datetime
    start_time: dt.datetime
    end_time: dt.datetime | None
    license_count: int
    product_id: str
    activation_code: str
    # KSS 3.0 extension attributes
    customer_id: str
    trial_end_time: dt.datetime | None = None
    pause_end_time: dt.datetime | None = None
    max_license_count_this_period: int | None = None


@dataclass(frozen=True)
class UsageInfo:
    first_activation_time: dt.datetime | None


@dataclass(frozen=True)
class DownloadLink:
    url: str
    language: str
    application_name: str
    alphabet: str | None = None
    region: str | None = None
    rebranding_code: str | None = None


@dataclass(frozen=True)
class ItemResult:
    kind: str
    unit_id: int
    subscriber_id: str
    activation_code: str | None = None  # Activate, ChangeLicenseCount, ChangeProduct
    subscription: SubscriptionInfo | None = None  # GetInfo
    usage: UsageInfo | None = None  # GetInfo
    platform: str | None = None  # GetDownloadLinks
    links: tuple[DownloadLink, ...] = ()  # GetDownloadLinks


@dataclass(frozen=True)
class ItemError:
    kind: str  # the request item's kind; rendered as <kind>Error
    unit_id: int
    subscriber_id: str
    code: int
    message: str


@dataclass(frozen=True)
class TransactionError:
    code: int
    message: str


@dataclass
class ResponseContainer:
    timestamp: dt.datetime
    transaction_id: str
    results: list[ItemResult] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    transaction_error: TransactionError | None = None
