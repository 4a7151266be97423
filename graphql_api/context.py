"""What every resolver of one request can reach: the service, this request's loaders, the caller's token."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from domain.service import RecommendationService
from graphql_api.auth import Principal, TokenAuthority
from graphql_api.errors import RateLimited, Unauthenticated
from graphql_api.jobs import RefreshJobs
from graphql_api.limits import MutationRateLimiter
from graphql_api.loaders import Loaders

if TYPE_CHECKING:
    from graphql_api.observability.runtime import Observability


@dataclass(slots=True)
class RequestContext:
    service: RecommendationService
    loaders: Loaders
    jobs: RefreshJobs
    tokens: TokenAuthority
    authorization: str | None
    client_address: str = ""
    rate_limiter: MutationRateLimiter | None = None
    response: Any = None  # the view's sub-response: status and headers set here reach the HTTP response
    observability: Observability | None = None  # for `cacheStats`
    _principal: Principal | None = field(default=None, repr=False)
    _mutations_admitted: int = field(default=0, repr=False)

    def principal(self) -> Principal:
        """The verified caller; raises Unauthenticated. Verified on first use, since queries never need it."""
        if self._principal is None:
            self._principal = self.tokens.verify(self.authorization)
        return self._principal

    def admit_mutation(self) -> None:
        """Take a turn from the caller's mutation bucket, before anything else the mutation does; raises RateLimited.

        The caller is the token's user when the token verifies, else the client's
        address, so requests with bad tokens are limited too. When the first
        mutation of a request is refused nothing ran, so the response is a 429;
        a later one in the same document leaves the earlier results standing (200).
        """
        if self.rate_limiter is None:
            return
        try:
            client = f"user:{self.principal().user_id}"
        except Unauthenticated:
            client = f"address:{self.client_address}"
        wait = self.rate_limiter.acquire(client)
        if wait == 0.0:
            self._mutations_admitted += 1
            return
        retry_after = max(1, math.ceil(wait))
        if self.response is not None:
            self.response.headers["Retry-After"] = str(retry_after)
            if self._mutations_admitted == 0:
                self.response.status_code = 429
        raise RateLimited(retry_after)
