"""What every resolver of one request can reach: the service, this request's loaders, the caller's token."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.service import RecommendationService
from graphql_api.auth import Principal, TokenAuthority
from graphql_api.jobs import RefreshJobs
from graphql_api.loaders import Loaders


@dataclass(slots=True)
class RequestContext:
    service: RecommendationService
    loaders: Loaders
    jobs: RefreshJobs
    tokens: TokenAuthority
    authorization: str | None
    _principal: Principal | None = field(default=None, repr=False)

    def principal(self) -> Principal:
        """The verified caller; raises Unauthenticated. Verified on first use, since queries never need it."""
        if self._principal is None:
            self._principal = self.tokens.verify(self.authorization)
        return self._principal
