"""The error tree. ``api`` maps it to HTTP status codes and OpenAI-style bodies in one place.

GroundgateError
 ├── ConfigError              config file or environment is wrong (start-up only)
 ├── InvalidRequest        400  malformed JSON, bad field, forbidden field
 │    ├── UnsupportedRequest
 │    └── GuardBlocked          an input guard refused the request (``code``: guard_NAME)
 ├── AuthenticationFailed  401
 ├── NotFound              404
 │    └── ModelNotFound
 ├── Conflict              409
 │    └── ReviewDecided         a review already decided (a decision is final)
 ├── PayloadTooLarge       413
 ├── RateLimited           429  (carries retry_after)
 ├── ProviderError         502  every upstream failure; ``transient`` says whether to try again
 │    ├── UpstreamRejected  400  upstream refused the request itself (permanent)
 │    ├── UpstreamRateLimited 429  (carries retry_after)
 │    ├── UpstreamUnavailable 503
 │    └── UpstreamTimeout   504
 ├── SchemaValidationFailed 502  the answer never matched the requested format or tool schema
 ├── Overloaded            503  shed by the gateway itself
 ├── PromptUnavailable     500  an app's prompt cannot be served (label unset, version changed)
 └── HeldForReview         202  not a failure: the answer waits for a human reviewer
"""

from __future__ import annotations


class GroundgateError(Exception):
    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class ConfigError(GroundgateError):
    """The configuration is invalid; ``problems`` lists one line per offending key."""

    def __init__(self, problems: list[str], *, source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"invalid {source}:\n" + "\n".join(f"  - {p}" for p in problems))


class InvalidRequest(GroundgateError):
    status_code = 400
    error_type = "invalid_request_error"


class UnsupportedRequest(InvalidRequest):
    code = "unsupported_parameter"


class GuardBlocked(InvalidRequest):
    """An input guard refused the request: nothing was sent upstream. ``code`` names the
    guard (``guard_injection``, ``guard_secrets``, ...); the message says why, never quoting
    what was found."""

    def __init__(self, guard: str, message: str) -> None:
        super().__init__(message, code=f"guard_{guard}")
        self.guard = guard


class AuthenticationFailed(GroundgateError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class NotFound(GroundgateError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(GroundgateError):
    status_code = 409
    error_type = "invalid_request_error"
    code = "conflict"


class ReviewDecided(Conflict):
    """A review can be approved or rejected once; it was already decided."""

    code = "review_already_decided"


class PayloadTooLarge(GroundgateError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GroundgateError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetExceeded(RateLimited):
    error_type = "insufficient_quota"
    code = "budget_exceeded"


class PromptUnavailable(GroundgateError):
    """The prompt an app names cannot be served: its label is not set, points at a version
    this gateway's prompt files lack, or the version's content changed after it was used.
    The operator's to fix (the message says how); the client can only try later."""

    code = "prompt_unavailable"


class Overloaded(GroundgateError):
    status_code = 503
    error_type = "server_error"
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderError(GroundgateError):
    """An upstream call failed. ``transient`` failures may succeed on another try or deployment."""

    status_code = 502
    error_type = "upstream_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        deployment: str | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.deployment = deployment


class UpstreamRejected(ProviderError):
    """The upstream refused the request as invalid (400/422): the client's fault; not retried."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "upstream_rejected"

    def __init__(
        self, message: str, *, upstream_status: int | None = None, deployment: str | None = None
    ) -> None:
        super().__init__(
            message, transient=False, upstream_status=upstream_status, deployment=deployment
        )


class ContextWindowExceeded(UpstreamRejected):
    code = "context_length_exceeded"


class ContentFiltered(UpstreamRejected):
    code = "content_filter"


class SchemaValidationFailed(GroundgateError):
    """The model's answer did not match the request's ``response_format`` or tool parameters,
    even after being asked again with what was wrong. Not a :class:`ProviderError`: the
    upstream answered, and trying another deployment is not the cure."""

    status_code = 502
    error_type = "upstream_error"
    code = "schema_validation_failed"


class UpstreamRateLimited(ProviderError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "upstream_rate_limited"


class UpstreamUnavailable(ProviderError):
    status_code = 503
    code = "upstream_unavailable"


class UpstreamTimeout(ProviderError):
    status_code = 504
    code = "upstream_timeout"

    def __init__(self, message: str, *, deployment: str | None = None) -> None:
        super().__init__(message, transient=True, deployment=deployment)


class DeadlineExceeded(UpstreamTimeout):
    """The request's own deadline passed (before a call, or while an answer was streaming):
    the request's limit, so it says nothing about the deployment's health."""


class HeldForReview(GroundgateError):
    """Not a failure: the answer was put in the human review queue in ``hold`` mode, and the
    client gets 202 with the review to poll (``GET /v1/reviews/{id}``) instead of the answer.
    Raised by the review stage while it holds the answer, so a stream can still say it with a
    status (``Flight.prime``); ``api/errors.py`` writes the body."""

    status_code = 202

    def __init__(self, review_id: str, trace_id: str) -> None:
        super().__init__(f"The answer is held for review {review_id}.")
        self.review_id = review_id
        self.trace_id = trace_id

    def body(self) -> dict[str, str]:
        return {
            "object": "review",
            "id": self.review_id,
            "status": "pending",
            "trace_id": self.trace_id,
        }
