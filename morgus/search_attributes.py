"""Custom search attributes (Keyword) upserted by TaskWorkflow; `morgus up` registers them on the dev server."""

from temporalio.common import SearchAttributeKey

MORGUS_STATUS = SearchAttributeKey.for_keyword("MorgusStatus")
MORGUS_PHASE = SearchAttributeKey.for_keyword("MorgusPhase")
ALL = (MORGUS_STATUS, MORGUS_PHASE)
