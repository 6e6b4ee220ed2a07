"""Models of the deploy app: releases (runtimes and deployments come with their issues)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse


class ImmutableRelease(Exception):
    """Raised when code tries to change a release that already exists."""


class ReleaseQuerySet(models.QuerySet):
    def update(self, **kwargs):
        # A bulk update would bypass Release.save(); releases never change once made.
        raise ImmutableRelease("releases are immutable: create a new release instead of updating one")


class Release(models.Model):
    """One immutable, numbered version of an application: its dice.yml as written plus the image
    each service and job runs. Deployments roll a release out onto a runtime; to change anything,
    make a new release."""

    application = models.ForeignKey(
        "projects.Application", on_delete=models.CASCADE, related_name="releases"
    )
    version = models.PositiveIntegerField(help_text="1, 2, 3 ... per application, in creation order")
    source_name = models.CharField(max_length=200, default="dice.yml", help_text="File the spec came from")
    spec_text = models.TextField(help_text="The dice.yml exactly as given")
    spec_hash = models.CharField(max_length=64, help_text="sha256 of the dice.yml text")
    images = models.JSONField(default=dict, blank=True, help_text="Service or job name -> image reference")
    image_overrides = models.JSONField(
        default=dict, blank=True, help_text="The images given at creation; they win over the spec in every workspace"
    )
    content_hash = models.CharField(
        max_length=64, db_index=True, help_text="sha256 of the text and the image map: equal hash, equal release"
    )
    description = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_name = models.CharField(max_length=150, blank=True)
    # The pipeline run that made this release, if any (a foreign key once pipelines exist).
    pipeline_run_id = models.PositiveBigIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = ReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["application", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["application", "version"], name="release_version_per_application")
        ]

    def __str__(self):
        return f"{self.application} v{self.version}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableRelease(f"release {self} is immutable: create a new release instead")
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        app = self.application
        project = app.project
        return reverse("deploy:release", args=[project.organization.slug, project.slug, app.slug, self.version])

    @property
    def organization(self):
        return self.application.project.organization

    @property
    def project(self):
        return self.application.project
