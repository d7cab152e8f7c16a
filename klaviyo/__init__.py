"""Klaviyo REST API client: ``from klaviyo import KlaviyoClient``."""

from .client import DEFAULT_BASE_URL, REVISION, KlaviyoClient
from .transport import RetryPolicy
from .exceptions import (
    KlaviyoAPIError,
    KlaviyoAuthError,
    KlaviyoConfigError,
    KlaviyoConflictError,
    KlaviyoNetworkError,
    KlaviyoNotFoundError,
    KlaviyoRateLimitError,
    KlaviyoServerError,
    KlaviyoValidationError,
)
from .limits import LocalTokenBucket, NoRateLimit, RateLimitTimeout, operation_limits
from .results import Results
from .models import (
    AcceptedJob,
    BulkEventsResult,
    BulkImportJob,
    EventResult,
    KlaviyoEvent,
    KlaviyoList,
    KlaviyoProfile,
    KlaviyoSegment,
    ProfileImportError,
    ProfileLocation,
    ProfileUpsertResult,
)
from .accounts import AccountAddress, KlaviyoAccount
from .catalog import (
    CatalogCategory,
    CatalogItem,
    CatalogJob,
    CatalogJobError,
    CatalogRowError,
    CatalogSubmission,
    CatalogVariant,
    catalog_id,
)

__all__ = [
    "DEFAULT_BASE_URL", "REVISION", "KlaviyoClient", "RetryPolicy",
    "KlaviyoAPIError", "KlaviyoAuthError", "KlaviyoConfigError", "KlaviyoConflictError", "KlaviyoNetworkError", "KlaviyoNotFoundError",
    "KlaviyoRateLimitError", "KlaviyoServerError", "KlaviyoValidationError",
    "LocalTokenBucket", "NoRateLimit", "RateLimitTimeout", "operation_limits", "Results",
    "AcceptedJob", "BulkEventsResult", "BulkImportJob", "EventResult", "KlaviyoEvent", "KlaviyoList", "KlaviyoProfile",
    "KlaviyoSegment", "ProfileImportError", "ProfileLocation", "ProfileUpsertResult",
]
__all__ += [
    "AccountAddress", "KlaviyoAccount", "CatalogCategory", "CatalogItem", "CatalogJob", "CatalogJobError",
    "CatalogRowError", "CatalogSubmission", "CatalogVariant", "catalog_id",
]
