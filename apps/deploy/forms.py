"""Forms of the release pages."""

from __future__ import annotations

from django import forms

MAX_UPLOAD = 1024 * 1024  # the dice.yml parser's own limit


def parse_image_lines(text: str) -> tuple[dict[str, str], list[str]]:
    """`service=image` per line (blank lines and # comments skipped) -> (map, problems)."""
    images: dict[str, str] = {}
    problems = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, ref = line.partition("=")
        name, ref = name.strip(), ref.strip()
        if not sep or not name or not ref:
            problems.append(f"line {number}: expected service=image, got {line!r}")
        elif name in images:
            problems.append(f"line {number}: {name} is given twice")
        else:
            images[name] = ref
    return images, problems


class ReleaseForm(forms.Form):
    spec_text = forms.CharField(
        label="dice.yml",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false", "class": "code"}),
        help_text="Paste the file, or upload it below.",
    )
    spec_file = forms.FileField(label="…or upload a dice.yml", required=False)
    files = forms.FileField(
        label="Files (optional)",
        required=False,
        help_text="A .tar.gz of the spec's folder: on the local cluster the services run from these "
                  "files (unless the application has a repository), e.g. tar czf app.tgz -C examples/guestbook .",
    )
    images = forms.CharField(
        label="Image overrides",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "code",
                                     "placeholder": "api=registry.example/shop/api:1.4.2"}),
        help_text="One service=image per line; these win over the spec's image fields.",
    )
    description = forms.CharField(max_length=500, required=False)

    def clean_images(self):
        images, problems = parse_image_lines(self.cleaned_data.get("images", ""))
        if problems:
            raise forms.ValidationError(problems)
        return images

    def clean_files(self):
        from django.core.exceptions import ValidationError

        from apps.deploy.bundles import MAX_ARCHIVE, check_archive

        upload = self.cleaned_data.get("files")
        if not upload:
            return None
        data = upload.read(MAX_ARCHIVE + 1)
        try:
            check_archive(data)
        except ValidationError as exc:
            raise forms.ValidationError(exc.message_dict.get("files", exc.messages)) from None
        return data

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("spec_file")
        cleaned["source_name"] = "dice.yml"
        if upload:
            raw = upload.read(MAX_UPLOAD + 1)
            if len(raw) > MAX_UPLOAD:
                self.add_error("spec_file", f"the file is larger than {MAX_UPLOAD // 1024} KiB")
                return cleaned
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("spec_file", "the file is not UTF-8 text")
                return cleaned
            cleaned["spec_text"] = text
            cleaned["source_name"] = upload.name[:200]
            # Show the uploaded text in the textarea if the page comes back with errors.
            self.data = self.data.copy()
            self.data["spec_text"] = text
        elif not (cleaned.get("spec_text") or "").strip():
            self.add_error("spec_text", "paste a dice.yml or upload one")
        return cleaned


class CompareForm(forms.Form):
    other = forms.TypedChoiceField(label="Compare with", coerce=int, required=False)
    workspace = forms.ChoiceField(label="Workspace")

    def __init__(self, *args, versions=(), workspaces=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["other"].choices = [("", "(nothing: the whole release)")] + [(v, f"v{v}") for v in versions]
        self.fields["workspace"].choices = list(workspaces)


class DeployForm(forms.Form):
    """Deploy a release: to which workspace, onto which runtime (made if new)."""

    workspace = forms.ChoiceField(label="Workspace")
    runtime = forms.CharField(
        label="Runtime", initial="main", max_length=40,
        help_text="An existing runtime of the workspace, or a new name (lowercase letters, digits, hyphens)",
    )

    def __init__(self, *args, workspaces=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workspace"].choices = list(workspaces)


class ScaleForm(forms.Form):
    service = forms.CharField(max_length=100)
    replicas = forms.IntegerField(min_value=0, max_value=100)
