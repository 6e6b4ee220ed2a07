"""First-start setup: the admin user and, for automation, a fixed API token."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model

from apps.clusters.models import Cluster
from apps.projects.models import ApiToken

ADMIN_USERNAME = "admin"


def ensure_admin() -> str | None:
    """Create the admin user if missing; returns the generated password when one was made now.

    DICE_ADMIN_PASSWORD, when set, is the admin's password (set again at every start).
    DICE_ADMIN_TOKEN, when set, is a valid API token of the admin.
    """
    Cluster.local()
    User = get_user_model()
    fixed = os.environ.get("DICE_ADMIN_PASSWORD", "")
    generated = None
    admin = User.objects.filter(username=ADMIN_USERNAME).first()
    if admin is None:
        password = fixed or secrets.token_urlsafe(12)
        generated = None if fixed else password
        admin = User.objects.create_superuser(ADMIN_USERNAME, email="", password=password)
    elif fixed and not admin.check_password(fixed):
        admin.set_password(fixed)
        admin.save(update_fields=["password"])
    token_key = os.environ.get("DICE_ADMIN_TOKEN", "")
    if token_key:
        digest = ApiToken.hash_key(token_key)
        if not ApiToken.objects.filter(digest=digest).exists():
            ApiToken.objects.create(user=admin, name="DICE_ADMIN_TOKEN", prefix=token_key[:12], digest=digest)
    return generated
