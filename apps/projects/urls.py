"""Page URLs of the tenancy app."""

from django.urls import path

from apps.projects import views

app_name = "projects"

urlpatterns = [
    path("orgs/", views.OrganizationListView.as_view(), name="organizations"),
    path("orgs/new/", views.OrganizationCreateView.as_view(), name="organization_add"),
    path("projects/", views.ProjectListView.as_view(), name="projects"),
    path("apps/", views.ApplicationListView.as_view(), name="applications"),
    path("audit/", views.AuditEventListView.as_view(), name="audit"),
    path("tokens/", views.TokensView.as_view(), name="tokens"),
    path("users/", views.UsersView.as_view(), name="users"),
    path("permissions/", views.permission_table, name="permissions"),
    path("orgs/<slug:org>/", views.OrganizationView.as_view(), name="organization"),
    path("orgs/<slug:org>/edit/", views.OrganizationEditView.as_view(), name="organization_edit"),
    path("orgs/<slug:org>/delete/", views.OrganizationDeleteView.as_view(), name="organization_delete"),
    path("orgs/<slug:org>/members/", views.MembersView.as_view(), name="organization_members"),
    path("orgs/<slug:org>/projects/new/", views.ProjectCreateView.as_view(), name="project_add"),
    path("orgs/<slug:org>/<slug:project>/", views.ProjectView.as_view(), name="project"),
    path("orgs/<slug:org>/<slug:project>/edit/", views.ProjectEditView.as_view(), name="project_edit"),
    path("orgs/<slug:org>/<slug:project>/delete/", views.ProjectDeleteView.as_view(), name="project_delete"),
    path("orgs/<slug:org>/<slug:project>/members/", views.MembersView.as_view(), name="project_members"),
    path(
        "orgs/<slug:org>/<slug:project>/workspaces/<str:kind>/",
        views.WorkspaceEditView.as_view(),
        name="workspace_edit",
    ),
    path("orgs/<slug:org>/<slug:project>/apps/new/", views.ApplicationCreateView.as_view(), name="application_add"),
    path("orgs/<slug:org>/<slug:project>/<slug:app>/", views.ApplicationView.as_view(), name="application"),
    path("orgs/<slug:org>/<slug:project>/<slug:app>/edit/", views.ApplicationEditView.as_view(), name="application_edit"),
    path(
        "orgs/<slug:org>/<slug:project>/<slug:app>/delete/",
        views.ApplicationDeleteView.as_view(),
        name="application_delete",
    ),
    path("orgs/<slug:org>/<slug:project>/<slug:app>/members/", views.MembersView.as_view(), name="application_members"),
]
