"""A reusable API test suite: a test class declares the endpoint and how to make objects, and gets
list/get/create/update/delete tests plus "another organization's member sees nothing"."""

from __future__ import annotations

import itertools

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


class ScopedAPICases:
    basename: str = ""
    updatable = True
    deletable = True
    update_data: dict = {}

    # -- what a test class declares --------------------------------------------------------
    def make(self, tenant):
        """Create one new object inside the tenant's organization."""
        raise NotImplementedError

    def create_data(self, tenant) -> dict | None:
        """POST data creating an object in the tenant's scope (None: not creatable by the API)."""
        return None

    def lookup(self, obj):
        return obj.pk

    def model_of(self, obj):
        return type(obj)

    # -- helpers ---------------------------------------------------------------------------
    def list_url(self):
        return reverse(f"api:{self.basename}-list")

    def detail_url(self, obj):
        return reverse(f"api:{self.basename}-detail", args=[self.lookup(obj)])

    def _ids(self, response):
        assert response.status_code == 200, response.content
        return {item["id"] for item in response.json()["results"]}

    # -- the tests -------------------------------------------------------------------------
    def test_list_shows_only_own_organization(self, tenant_a, tenant_b):
        mine, theirs = self.make(tenant_a), self.make(tenant_b)
        ids = self._ids(tenant_a.api().get(self.list_url(), {"limit": 1000}))
        assert mine.pk in ids
        assert theirs.pk not in ids

    def test_get(self, tenant_a):
        obj = self.make(tenant_a)
        response = tenant_a.api().get(self.detail_url(obj))
        assert response.status_code == 200, response.content
        assert response.json()["id"] == obj.pk

    def test_other_organization_gets_404(self, tenant_a, tenant_b):
        theirs = self.make(tenant_b)
        api = tenant_a.api()
        assert api.get(self.detail_url(theirs)).status_code == 404
        if self.updatable:
            assert api.patch(self.detail_url(theirs), self.update_data, format="json").status_code == 404
        if self.deletable:
            assert api.delete(self.detail_url(theirs)).status_code == 404
        assert self.model_of(theirs).objects.filter(pk=theirs.pk).exists()

    def test_anonymous_is_refused(self, tenant_a):
        from rest_framework.test import APIClient

        obj = self.make(tenant_a)
        assert APIClient().get(self.list_url()).status_code in (401, 403)
        assert APIClient().get(self.detail_url(obj)).status_code in (401, 403)

    def test_create(self, tenant_a):
        data = self.create_data(tenant_a)
        if data is None:
            return
        response = tenant_a.api().post(self.list_url(), data, format="json")
        assert response.status_code == 201, response.content
        assert tenant_a.api().get(self.list_url(), {"limit": 1000}).json()["count"] >= 1

    def test_create_inside_another_organization_is_refused(self, tenant_a, tenant_b):
        data = self.create_data(tenant_b)
        if data is None:
            return
        before = self._count_all(tenant_b)
        response = tenant_a.api().post(self.list_url(), data, format="json")
        assert response.status_code in (400, 403, 404), response.content
        assert self._count_all(tenant_b) == before

    def _count_all(self, tenant):
        return len(self._ids(tenant.api().get(self.list_url(), {"limit": 1000})))

    def test_update(self, tenant_a):
        if not self.updatable:
            return
        obj = self.make(tenant_a)
        response = tenant_a.api().patch(self.detail_url(obj), self.update_data, format="json")
        assert response.status_code == 200, response.content
        body = response.json()
        for key, value in self.update_data.items():
            assert str(body[key]) == str(value)

    def test_delete(self, tenant_a):
        if not self.deletable:
            return
        obj = self.make(tenant_a)
        response = tenant_a.api().delete(self.detail_url(obj))
        assert response.status_code == 204, response.content
        assert not self.model_of(obj).objects.filter(pk=obj.pk).exists()

    def test_list_query_count_does_not_grow(self, tenant_a):
        api = tenant_a.api()
        for _ in range(2):
            self.make(tenant_a)
        api.get(self.list_url())  # warm caches (content types etc.)
        with CaptureQueriesContext(connection) as few:
            assert api.get(self.list_url()).status_code == 200
        for _ in range(6):
            self.make(tenant_a)
        with CaptureQueriesContext(connection) as many:
            assert api.get(self.list_url()).status_code == 200
        assert len(many) == len(few), f"N+1: {len(few)} queries for few rows, {len(many)} for more"
