"""What every rule call needs to know: who calls, what time it is for them, the vendor profile."""

from __future__ import annotations

from dataclasses import dataclass

from ksimkit.simulators.core.catalog import Profile
from ksimkit.simulators.core.clock import PartnerClock
from ksimkit.simulators.core.partners import Partner


@dataclass(frozen=True)
class CallContext:
    partner: Partner  # with its clock: the one partner time of the call
    profile: Profile
    actor: str  # who made the change, for the audit log

    @property
    def clock(self) -> PartnerClock:
        return self.partner.clock

    @property
    def partner_id(self) -> str:
        return self.partner.id
