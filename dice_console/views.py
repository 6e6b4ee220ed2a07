"""Generic page views: an app's view declares its model, table, filterset and form; these do the rest."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views import View
from django_tables2 import RequestConfig
from django_tables2.data import TableQuerysetData

from apps.projects import scope
from dice_console.paging import page_of


class ScopedMixin(LoginRequiredMixin):
    """Every page reads through the requesting user's organization scope."""

    model = None

    def scoped_queryset(self):
        return scope.scoped(self.request.user, self.model)


class PagedQuerysetData(TableQuerysetData):
    """A table's queryset whose page is read by id (dice_console.paging)."""

    def __getitem__(self, key):
        if isinstance(key, slice) and key.step is None and key.start is not None and key.stop is not None:
            return page_of(self.data, key.start, key.stop)
        return super().__getitem__(key)


class ObjectListView(ScopedMixin, View):
    """A filtered, sorted, paged table; an htmx request gets only the table partial."""

    table_class = None
    filterset_class = None
    template_name = "dice/object_list.html"
    title = ""
    add_url_name: str | None = None
    per_page = 25

    def get_queryset(self):
        return self.scoped_queryset()

    def extra_context(self):
        return {}

    def crumbs(self) -> list[tuple[str, str]]:
        """The breadcrumbs above the title: [(label, url), ...] after Home."""
        return []

    def get(self, request, *args, **kwargs):
        queryset = self.get_queryset()
        filterset = None
        if self.filterset_class is not None:
            filterset = self.filterset_class(request.GET, queryset=queryset, request=request)
            queryset = filterset.qs
        table = self.table_class(PagedQuerysetData(queryset))
        RequestConfig(request, paginate={"per_page": self.per_page}).configure(table)
        context = {
            "table": table,
            "filterset": filterset,
            "title": self.title or self.model._meta.verbose_name_plural.capitalize(),
            "add_url_name": self.add_url_name,
            "crumbs": self.crumbs(),
            **self.extra_context(),
        }
        if request.htmx and request.htmx.target == "object-table":
            return render(request, "dice/table_partial.html", context)
        return render(request, self.template_name, context)


class ServiceFormView(ScopedMixin, View):
    """A form whose valid data goes to a services.py function; its errors show next to the fields."""

    form_class = None
    template_name = "dice/object_form.html"
    title = ""

    def get_target(self):
        """The object the form acts on or inside (already scoped); None for top-level creation."""
        return None

    def get_initial(self, target):
        return {}

    def form_kwargs(self, target):
        return {}

    def perform(self, form, target):  # pragma: no cover - overridden
        raise NotImplementedError

    def check(self, target):
        """Refuse early (403) when the user may not do this."""

    def get(self, request, *args, **kwargs):
        target = self.get_target()
        self.check(target)
        form = self.form_class(initial=self.get_initial(target), **self.form_kwargs(target))
        return render(request, self.template_name,
                      {"form": form, "title": self.title, "target": target, **self.extra_context(target)})

    def post(self, request, *args, **kwargs):
        target = self.get_target()
        self.check(target)
        form = self.form_class(request.POST, **self.form_kwargs(target))
        if form.is_valid():
            try:
                obj = self.perform(form, target)
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, self.success_message(obj, target))
                return redirect(self.success_url(obj, target))
        status = 422 if request.htmx else 200
        return render(
            request, self.template_name,
            {"form": form, "title": self.title, "target": target, **self.extra_context(target)}, status=status,
        )

    def extra_context(self, target) -> dict:
        return {}

    def success_message(self, obj, target) -> str:
        return f"{self.title}: done."

    def success_url(self, obj, target):
        return obj.get_absolute_url()


def typed_name(target) -> str:
    """What a person types to confirm deleting `target`: its slug, else its name."""
    return getattr(target, "slug", None) or getattr(target, "name", None) or str(target)


def name_typed(request, expected: str) -> bool:
    return request.POST.get("confirm_name", "").strip() == expected


class ServiceDeleteView(ScopedMixin, View):
    """A confirmation page (the object's name must be typed), then the services.py delete function."""

    template_name = "dice/confirm_delete.html"

    def get_target(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def perform(self, target):  # pragma: no cover - overridden
        raise NotImplementedError

    def success_url(self, target):
        return "/"

    def context(self, target, **extra):
        return {"object": target, "confirm_name": typed_name(target), **extra}

    def get(self, request, *args, **kwargs):
        target = self.get_target()
        return render(request, self.template_name, self.context(target))

    def post(self, request, *args, **kwargs):
        target = self.get_target()
        if not name_typed(request, typed_name(target)):
            error = f"Type {typed_name(target)} to confirm: nothing was deleted."
            return render(request, self.template_name, self.context(target, error=error), status=422)
        url = self.success_url(target)
        label = str(target)
        self.perform(target)
        messages.success(request, f"Deleted {label}.")
        return redirect(url)


def _add_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def get_scoped_or_404(queryset, **lookup):
    try:
        return queryset.get(**lookup)
    except queryset.model.DoesNotExist:
        raise Http404(f"no {queryset.model._meta.verbose_name} matches") from None


def require(user, perm: str, obj) -> None:
    if not scope.has_perm(user, perm, obj):
        raise PermissionDenied(f"you may not {perm.replace('_', ' ')} {obj}")
