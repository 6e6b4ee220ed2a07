"""Forms of the cluster pages."""

from django import forms
from django.core.validators import validate_slug

from apps.clusters.choices import NodeRole
from apps.projects.choices import WorkspaceKind

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


class ClusterRegisterForm(CredentialsMixin, ClusterSettingsForm):
    name = forms.CharField(max_length=63, validators=[validate_slug], help_text="Lowercase letters, digits, -")

    field_order = ["name"]


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
