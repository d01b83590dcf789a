"""URLs: a health check for readiness polling and dasf-broker-django's views."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def health(request: HttpRequest) -> JsonResponse:
    """Answer 200 once the site serves requests."""
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("health/", health),
    path("dasf/", include("dasf_broker.urls")),
]
