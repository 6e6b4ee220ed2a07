"""Pages of organizations, projects, applications, members, tokens and the audit log."""

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from apps.clusters import services as cluster_services
from apps.projects import accounts, filtersets, permissions, scope, services, tables
from apps.projects.choices import Role
from apps.projects.forms import (
    ApplicationForm,
    InviteForm,
    MemberForm,
    OrganizationForm,
    PasswordChoiceForm,
    ProjectForm,
    RoleForm,
    TokenForm,
    WorkspaceForm,
)
from apps.projects.models import ApiToken, Application, AuditEvent, Member, Organization, Project, Workspace
from dice_console.views import (
    ObjectListView,
    ScopedMixin,
    ServiceDeleteView,
    ServiceFormView,
    get_scoped_or_404,
    require,
)


@login_required
def home(request):
    return redirect("projects:organizations")


# ---- lookups by slug, always through the scope --------------------------------------------


class OrgLookup(ScopedMixin):
    def get_org(self):
        return get_scoped_or_404(scope.organizations_for(self.request.user), slug=self.kwargs["org"])


class ProjectLookup(ScopedMixin):
    def get_project(self):
        return get_scoped_or_404(
            scope.projects_for(self.request.user).select_related("organization"),
            organization__slug=self.kwargs["org"],
            slug=self.kwargs["project"],
        )


class AppLookup(ScopedMixin):
    def get_app(self):
        return get_scoped_or_404(
            scope.applications_for(self.request.user).select_related("project__organization"),
            project__organization__slug=self.kwargs["org"],
            project__slug=self.kwargs["project"],
            slug=self.kwargs["app"],
        )


# ---- lists -------------------------------------------------------------------------------


class OrganizationListView(ObjectListView):
    model = Organization
    table_class = tables.OrganizationTable
    filterset_class = filtersets.OrganizationFilterSet
    title = "Organizations"
    add_url_name = "projects:organization_add"

    def get_queryset(self):
        return super().get_queryset().annotate(project_count=Count("projects"))

    def extra_context(self):
        # The console's first page: say so when tenant code is not kept from the console and each other.
        context = {"isolation_warning": cluster_services.isolation_warning()}
        if not services.may_create_organizations(self.request.user):
            context["add_url_name"] = None
        return context


class ProjectListView(ObjectListView):
    model = Project
    table_class = tables.ProjectTable
    filterset_class = filtersets.ProjectFilterSet
    title = "Projects"

    def get_queryset(self):
        return super().get_queryset().select_related("organization").annotate(application_count=Count("applications"))


class ApplicationListView(ObjectListView):
    model = Application
    table_class = tables.ApplicationTable
    filterset_class = filtersets.ApplicationFilterSet
    title = "Applications"

    def get_queryset(self):
        return super().get_queryset().select_related("project__organization")


class AuditEventListView(ObjectListView):
    model = AuditEvent
    table_class = tables.AuditEventTable
    filterset_class = filtersets.AuditEventFilterSet
    title = "Audit log"

    def get_queryset(self):
        return super().get_queryset().select_related("organization")


# ---- details -----------------------------------------------------------------------------


class OrganizationView(OrgLookup, View):
    def get(self, request, org):
        obj = self.get_org()
        projects = scope.projects_for(request.user).filter(organization=obj).annotate(
            application_count=Count("applications")
        )
        return render(request, "projects/organization.html", {
            "object": obj,
            "projects": tables.ProjectTable(projects.select_related("organization"), exclude=("organization",)),
            "can_change": scope.has_perm(request.user, permissions.CHANGE, obj),
            "can_delete": scope.has_perm(request.user, permissions.DELETE, obj),
            "can_manage_members": scope.has_perm(request.user, permissions.MANAGE_MEMBERS, obj),
        })


class ProjectView(ProjectLookup, View):
    def get(self, request, org, project):
        obj = self.get_project()
        apps = scope.applications_for(request.user).filter(project=obj).select_related("project__organization")
        return render(request, "projects/project.html", {
            "object": obj,
            "applications": tables.ApplicationTable(apps, exclude=("project",)),
            "workspaces": obj.workspaces.select_related("cluster").order_by("pk"),
            "can_change": scope.has_perm(request.user, permissions.CHANGE, obj),
            "can_delete": scope.has_perm(request.user, permissions.DELETE, obj),
            "can_manage_members": scope.has_perm(request.user, permissions.MANAGE_MEMBERS, obj),
        })


class ApplicationView(AppLookup, View):
    def get(self, request, org, project, app):
        obj = self.get_app()
        return render(request, "projects/application.html", {
            "object": obj,
            "can_change": scope.has_perm(request.user, permissions.CHANGE, obj),
            "can_delete": scope.has_perm(request.user, permissions.DELETE, obj),
            "can_manage_members": scope.has_perm(request.user, permissions.MANAGE_MEMBERS, obj),
        })


# ---- create and edit ---------------------------------------------------------------------


class NeedsChange:
    """Forms that need the CHANGE permission on the object they act on or inside."""

    def check(self, target):
        require(self.request.user, permissions.CHANGE, target)


class CreateInside(NeedsChange):
    """Creates a child of the target through `create(user, target, **cleaned_data)`."""

    create = None

    def perform(self, form, target):
        return self.create(self.request.user, target, **form.cleaned_data)


class EditTarget(NeedsChange):
    """Edits the target through `update(user, target, **cleaned_data)`; the slug stays."""

    update = None
    initial_fields: tuple[str, ...] = ("name", "description")

    def form_kwargs(self, target):
        return {"editing": True}

    def get_initial(self, target):
        return {field: getattr(target, field) for field in self.initial_fields}

    def perform(self, form, target):
        return self.update(self.request.user, target, **form.cleaned_data)


class OrganizationCreateView(ServiceFormView):
    model = Organization
    form_class = OrganizationForm
    title = "New organization"

    def check(self, target):
        if not services.may_create_organizations(self.request.user):
            raise PermissionDenied("only staff create organizations here; ask one")

    def perform(self, form, target):
        return services.create_organization(self.request.user, **form.cleaned_data)


class OrganizationEditView(OrgLookup, EditTarget, ServiceFormView):
    form_class = OrganizationForm
    title = "Edit organization"
    update = staticmethod(services.update_organization)

    def get_target(self):
        return self.get_org()


class ProjectCreateView(OrgLookup, CreateInside, ServiceFormView):
    form_class = ProjectForm
    title = "New project"
    create = staticmethod(services.create_project)

    def get_target(self):
        return self.get_org()


class ProjectEditView(ProjectLookup, EditTarget, ServiceFormView):
    form_class = ProjectForm
    title = "Edit project"
    update = staticmethod(services.update_project)

    def get_target(self):
        return self.get_project()


class ApplicationCreateView(ProjectLookup, CreateInside, ServiceFormView):
    form_class = ApplicationForm
    title = "New application"
    create = staticmethod(services.create_application)

    def get_target(self):
        return self.get_project()


class ApplicationEditView(AppLookup, EditTarget, ServiceFormView):
    form_class = ApplicationForm
    title = "Edit application"
    update = staticmethod(services.update_application)
    initial_fields = ("name", "description", "repo_url")

    def get_target(self):
        return self.get_app()


class WorkspaceEditView(ProjectLookup, ServiceFormView):
    form_class = WorkspaceForm
    title = "Edit workspace"

    def get_target(self):
        project = self.get_project()
        return get_scoped_or_404(Workspace.objects.filter(project=project), kind=self.kwargs["kind"].upper())

    def check(self, target):
        require(self.request.user, permissions.CHANGE, target.project)

    def get_initial(self, target):
        return {"cluster": target.cluster, "cpu_quota": target.cpu_quota, "mem_quota": target.mem_quota,
                "protected": target.protected, "data_clusters": list(target.data_clusters.all())}

    def form_kwargs(self, target):
        return {"organization": target.organization}

    def perform(self, form, target):
        return services.update_workspace(self.request.user, target, **form.cleaned_data)

    def success_url(self, obj, target):
        return obj.project.get_absolute_url()


# ---- delete ------------------------------------------------------------------------------


class OrganizationDeleteView(OrgLookup, ServiceDeleteView):
    def get_target(self):
        return self.get_org()

    def perform(self, target):
        services.delete_organization(self.request.user, target)

    def success_url(self, target):
        return reverse("projects:organizations")


class ProjectDeleteView(ProjectLookup, ServiceDeleteView):
    def get_target(self):
        return self.get_project()

    def perform(self, target):
        services.delete_project(self.request.user, target)

    def success_url(self, target):
        return target.organization.get_absolute_url()


class ApplicationDeleteView(AppLookup, ServiceDeleteView):
    def get_target(self):
        return self.get_app()

    def perform(self, target):
        services.delete_application(self.request.user, target)

    def success_url(self, target):
        return target.project.get_absolute_url()


# ---- members -----------------------------------------------------------------------------


class MembersView(ScopedMixin, View):
    """Members of an organization, project or application; add, change role, remove."""

    def get_target(self):
        kw = self.kwargs
        if "app" in kw:
            return AppLookup.get_app(self)
        if "project" in kw:
            return ProjectLookup.get_project(self)
        return OrgLookup.get_org(self)

    def members(self, target):
        qs = Member.objects.filter(organization=target.organization).select_related(
            "user", "organization", "project__organization", "application__project__organization"
        )
        if isinstance(target, Project):
            qs = qs.filter(project=target)
        elif isinstance(target, Application):
            qs = qs.filter(application=target)
        else:
            qs = qs.filter(project__isnull=True, application__isnull=True)
        return qs

    def render_page(self, target, form, status=200, invite_form=None):
        can_manage = scope.has_perm(self.request.user, permissions.MANAGE_MEMBERS, target)
        table = tables.MemberTable(self.members(target))
        table.can_manage = can_manage
        table.roles = Role.choices
        can_invite = isinstance(target, Organization) and accounts.may_invite(self.request.user, target)
        return render(self.request, "projects/members.html", {
            "target": target, "table": table, "form": form, "can_manage": can_manage,
            "roles": Role.choices, "can_invite": can_invite, "invite_form": invite_form or InviteForm(),
        }, status=status)

    def get(self, request, **kwargs):
        return self.render_page(self.get_target(), MemberForm())

    def post(self, request, **kwargs):
        target = self.get_target()
        action = request.POST.get("action", "add")
        if action in ("role", "remove"):
            member = get_scoped_or_404(self.members(target), pk=request.POST.get("member"))
            try:
                if action == "remove":
                    services.remove_member(request.user, member)
                    messages.success(request, f"Removed {member.user}.")
                else:
                    form = RoleForm(request.POST)
                    if form.is_valid():
                        services.change_member_role(request.user, member, form.cleaned_data["role"])
                        messages.success(request, f"{member.user} is now {member.get_role_display()}.")
            except (ValidationError, PermissionDenied) as exc:
                messages.error(request, "; ".join(getattr(exc, "messages", None) or [str(exc)]))
            return redirect(request.path)
        if action == "invite":
            return self.invite(request, target)
        require(request.user, permissions.MANAGE_MEMBERS, target)
        form = MemberForm(request.POST)
        if form.is_valid():
            try:
                services.add_member(request.user, target, **form.cleaned_data)
            except ValidationError as exc:
                for field, errs in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errs)
            else:
                messages.success(request, f"Added {form.cleaned_data['username']}.")
                return redirect(request.path)
        return self.render_page(target, form, status=200)

    def invite(self, request, target):
        form = InviteForm(request.POST)
        if form.is_valid():
            try:
                invitation, key = accounts.invite(request.user, organization=target, **form.cleaned_data)
            except ValidationError as exc:
                _errors_into(form, exc)
            else:
                link = request.build_absolute_uri(reverse("invitation", args=[key]))
                messages.success(request, f"Invited {invitation.user}: send them this one-time link (shown only "
                                          f"now, valid {accounts.INVITATION_DAYS} days): {link}")
                return redirect(request.path)
        return self.render_page(target, MemberForm(), invite_form=form)


def _errors_into(form, exc: ValidationError) -> None:
    for field, errs in (exc.message_dict.items() if hasattr(exc, "error_dict") else [(None, exc.messages)]):
        form.add_error(field if field in form.fields else None, errs)


def accept_invitation(request, key: str):
    """The one-time link: choose a password, and the account is active and signed in."""
    try:
        invitation = accounts.find_invitation(key)
    except ValidationError as exc:
        return render(request, "registration/invitation.html", {"dead": exc.messages[0]}, status=410)
    form = PasswordChoiceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = accounts.accept(key, form.cleaned_data["password1"])
        except ValidationError as exc:
            form.add_error("password1", exc.messages)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome, {user.username}.")
            return redirect("home")
    return render(request, "registration/invitation.html", {"invitation": invitation, "form": form})


# ---- tokens and the permission table -------------------------------------------------------


class TokensView(ScopedMixin, View):
    model = ApiToken

    def get(self, request):
        return self.render_page(TokenForm(), None)

    def render_page(self, form, new_key):
        return render(self.request, "projects/tokens.html", {
            "tokens": self.scoped_queryset(), "form": form, "new_key": new_key,
        })

    def post(self, request):
        if "revoke" in request.POST:
            token = get_scoped_or_404(self.scoped_queryset(), pk=request.POST["revoke"])
            services.revoke_token(request.user, token)
            messages.success(request, f"Revoked {token.name}.")
            return redirect("projects:tokens")
        form = TokenForm(request.POST)
        if form.is_valid():
            _, key = services.create_token(request.user, name=form.cleaned_data["name"])
            return self.render_page(TokenForm(), key)
        return self.render_page(form, None)


class UsersView(View):
    """Staff: every account, its organizations and status; deactivate or activate; invite someone."""

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect(f"{reverse('login')}?next={request.path}")
        accounts.require_staff(request.user)
        return super().dispatch(request, *args, **kwargs)

    def render_page(self, invite_form):
        users = get_user_model().objects.order_by("username").prefetch_related("memberships__organization")
        return render(self.request, "projects/users.html", {"users": users, "invite_form": invite_form})

    def get(self, request):
        return self.render_page(InviteForm())

    def post(self, request):
        if "active" in request.POST:
            target = get_user_model().objects.filter(pk=request.POST.get("user")).first()
            if target is None:
                raise Http404("no such user")
            try:
                accounts.update_user(request.user, target, is_active=request.POST["active"] == "1")
            except PermissionDenied as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, f"{target} is {'active' if target.is_active else 'deactivated'}.")
            return redirect("projects:users")
        form = InviteForm(request.POST)
        if form.is_valid():
            try:
                invitation, key = accounts.invite(request.user, **form.cleaned_data)
            except ValidationError as exc:
                _errors_into(form, exc)
            else:
                link = request.build_absolute_uri(reverse("invitation", args=[key]))
                messages.success(request, f"Invited {invitation.user}: send them this one-time link (shown only "
                                          f"now, valid {accounts.INVITATION_DAYS} days): {link}")
                return redirect("projects:users")
        return self.render_page(form)


@login_required
def permission_table(request):
    return render(request, "projects/permissions.html", {
        "roles": Role.choices, "rows": permissions.permission_table(),
    })


class SignOutView(auth_views.LogoutView):
    """POST signs out; GET (the address typed in the bar) shows a page with the button, never a 405."""

    http_method_names = ["get", "post", "options"]

    def get(self, request, *args, **kwargs):
        return render(request, "registration/logout.html")
