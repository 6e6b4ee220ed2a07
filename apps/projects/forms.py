"""Forms of the tenancy pages."""

from django import forms
from django.core.validators import validate_slug

from apps.clusters import scope as cluster_scope
from apps.projects.choices import Role
from scheduler import registry


class SlugForm(forms.Form):
    slug = forms.CharField(max_length=63, validators=[validate_slug], help_text="Lowercase letters, digits, -")
    name = forms.CharField(max_length=100, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            del self.fields["slug"]

    def clean_slug(self):
        return self.cleaned_data["slug"].lower()


class OrganizationForm(SlugForm):
    pass


class ProjectForm(SlugForm):
    pass


class ApplicationForm(SlugForm):
    repo_url = forms.CharField(max_length=500, required=False, label="Repository URL")


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.GUEST)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class WorkspaceForm(forms.Form):
    cluster = forms.ModelChoiceField(queryset=None, to_field_name="name",
                                     help_text="Clusters the organization owns or has been granted")
    data_clusters = forms.ModelMultipleChoiceField(
        queryset=None, to_field_name="name", required=False,
        help_text="Spark and Flink clusters (one per engine) the workspace's data jobs and actions run on")
    cpu_quota = forms.DecimalField(min_value=0, max_digits=8, decimal_places=2, label="CPU quota (cores)")
    mem_quota = forms.IntegerField(min_value=0, label="Memory quota (MiB)")
    protected = forms.BooleanField(
        required=False, help_text="Pipeline deploys into this workspace wait for a review by someone allowed to "
                                  "deploy here")

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["cluster"].queryset = cluster_scope.usable_by(organization).order_by("name")
        self.fields["data_clusters"].queryset = cluster_scope.usable_by(organization).filter(
            kind__in=[k for k in registry.kinds() if registry.capabilities(k).data_engine]).order_by("name")


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.GUEST, required=False)

    def clean_role(self):
        return self.cleaned_data.get("role") or Role.GUEST


class PasswordChoiceForm(forms.Form):
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput, strip=False)

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "the two passwords differ")
        return data
