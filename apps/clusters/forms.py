"""Forms of the cluster pages."""

from django import forms
from django.core.validators import validate_slug

from apps.clusters.choices import NodeRole
from apps.clusters.scope import managed_organizations
from apps.projects.choices import WorkspaceKind
from apps.projects.models import Organization
from scheduler import registry

MAX_UPLOAD = 256 * 1024


class _FileOrText:
    @staticmethod
    def read(upload, text: str, what: str) -> str:
        if upload:
            if upload.size > MAX_UPLOAD:
                raise forms.ValidationError(f"the {what} file is larger than {MAX_UPLOAD // 1024} KiB")
            try:
                return upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise forms.ValidationError(f"the {what} file is not UTF-8 text") from None
        return text or ""


class ClusterSettingsForm(forms.Form):
    description = forms.CharField(max_length=200, required=False)
    wildcard_domain = forms.CharField(max_length=253, required=False, help_text="e.g. apps.example.com")
    ingress_class = forms.CharField(max_length=63, required=False)
    storage_class = forms.CharField(max_length=63, required=False)
    allow_prod_mem_overcommit = forms.BooleanField(
        required=False, label="Allow memory overcommit in PROD",
        help_text="Dangerous: PROD pods may be OOM-killed when neighbours use their limits",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for ws in WorkspaceKind.values:
            for res in ("cpu", "mem"):
                self.fields[f"{ws}_{res}_ratio"] = forms.DecimalField(
                    min_value=1, max_digits=5, decimal_places=2, initial=1,
                    label=f"{ws} {'CPU' if res == 'cpu' else 'memory'} ratio",
                )

    def ratio_fields(self):
        return [self[f"{ws}_{res}_ratio"] for ws in WorkspaceKind.values for res in ("cpu", "mem")]

    def setting_fields(self):
        return [self[n] for n in ("description", "wildcard_domain", "ingress_class", "storage_class",
                                  "allow_prod_mem_overcommit")]

    def overcommit(self) -> dict:
        data = self.cleaned_data
        return {ws: {"cpu_ratio": data[f"{ws}_cpu_ratio"], "mem_ratio": data[f"{ws}_mem_ratio"]}
                for ws in WorkspaceKind.values}

    def settings(self) -> dict:
        return {n: self.cleaned_data[n] for n in ("description", "wildcard_domain", "ingress_class",
                                                  "storage_class", "allow_prod_mem_overcommit")}


class CredentialsMixin(forms.Form):
    kubeconfig_file = forms.FileField(required=False, label="Kubeconfig file")
    kubeconfig = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False,
                                 label="…or paste the kubeconfig")
    context = forms.CharField(max_length=253, required=False,
                              help_text="Default: the kubeconfig's current-context",
                              widget=forms.TextInput(attrs={"list": "kube-contexts", "autocomplete": "off"}))
    server = forms.CharField(max_length=500, required=False, label="…or API server URL")
    ca_file = forms.FileField(required=False, label="CA certificate (PEM)")
    token = forms.CharField(required=False, widget=forms.PasswordInput, label="Bearer token")

    def credential_fields(self):
        return [self[n] for n in ("kubeconfig_file", "kubeconfig", "context", "server", "ca_file", "token")]

    def credentials(self) -> dict:
        data = self.cleaned_data
        kubeconfig = _FileOrText.read(data.get("kubeconfig_file"), data.get("kubeconfig"), "kubeconfig")
        ca = _FileOrText.read(data.get("ca_file"), "", "CA certificate")
        return {"kubeconfig": kubeconfig or None, "context": data.get("context") or None,
                "server": data.get("server") or None, "ca": ca, "token": data.get("token") or None}

    def clean(self):
        data = super().clean()
        try:
            self._creds = self.credentials()
        except forms.ValidationError as exc:
            self.add_error("kubeconfig_file", exc)
        return data


def _registrable_kinds() -> list[tuple[str, str]]:
    """Kinds a cluster is registered as: by credentials (Kubernetes) or by a REST endpoint (data engines)."""
    return [(kind, label) for kind, label in registry.choices()
            if registry.capabilities(kind).credentials or registry.capabilities(kind).data_engine]


class ClusterRegisterForm(CredentialsMixin, ClusterSettingsForm):
    name = forms.CharField(max_length=63, validators=[validate_slug], help_text="Lowercase letters, digits, -")
    kind = forms.ChoiceField(choices=_registrable_kinds, initial="kubernetes", required=False,
                             help_text="Kubernetes: give credentials below; Spark: give its master's REST URL")
    endpoint = forms.CharField(max_length=200, required=False, label="…or a Spark master's REST URL",
                               help_text="http://host:6066 (add ?master=spark://host:port&ui=http://host:port when "
                                         "not on 7077 and 8080)")
    organization = forms.ModelChoiceField(
        queryset=None, to_field_name="slug", required=False,
        help_text="The organization that owns the cluster (may be left empty if you manage only one); "
                  "empty for staff: platform-wide")

    field_order = ["name", "kind", "organization"]

    def credential_fields(self):
        return [*super().credential_fields(), self["endpoint"]]

    def target(self) -> dict:
        """How the cluster is reached: the kind, and its credentials or its endpoint."""
        kind = self.cleaned_data.get("kind") or "kubernetes"
        if registry.capabilities(kind).credentials:
            return {"kind": kind, **self._creds}
        return {"kind": kind, "endpoint": self.cleaned_data.get("endpoint") or ""}

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None and user.is_superuser:
            self.fields["organization"].queryset = Organization.objects.all()
        else:
            self.fields["organization"].queryset = Organization.objects.filter(
                pk__in=managed_organizations(user)) if user is not None else Organization.objects.none()


class ClusterEditForm(CredentialsMixin, ClusterSettingsForm):
    """Settings and ratios; credentials only when new ones are given."""


class NodeRolesForm(forms.Form):
    roles = forms.MultipleChoiceField(choices=NodeRole.choices, required=False,
                                      widget=forms.CheckboxSelectMultiple)
    locations = forms.CharField(
        required=False, label="Locations",
        help_text="names for dice.yml's `selectors: {location: NAME}`, comma-separated (dice/location-NAME)",
        widget=forms.TextInput(attrs={"placeholder": "locations, e.g. gpu, edge"}))

    def labels(self) -> list[str]:
        """The roles and the dice/location-<name> labels of the locations field."""
        names = [n.strip() for n in self.cleaned_data.get("locations", "").replace(" ", ",").split(",")]
        return [*self.cleaned_data["roles"], *(f"dice/location-{n}" for n in names if n)]
