"""A liveness and readiness probe for the web process."""

from django.db import connection
from django.http import JsonResponse


def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        db = "ok"
    except Exception as exc:  # pragma: no cover - reported, not raised
        db = f"error: {exc}"
    status = 200 if db == "ok" else 503
    return JsonResponse({"database": db}, status=status)
