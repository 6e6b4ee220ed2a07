"""App config of the projects app."""

from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "apps.projects"
    label = "projects"
    verbose_name = "Projects"

    def ready(self):
        from axes.signals import user_locked_out

        from apps.projects import audit

        # A sign-in lockout is an audit event (staff see it; it belongs to no organization).
        user_locked_out.connect(audit.record_lockout, dispatch_uid="dice-audit-lockout")
