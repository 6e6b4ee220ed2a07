"""API of runtimes and deployments: list and read (runtimes with the cluster's live status),
deploy, cancel, scale, restart, stop, roll back and delete. Every change goes through
apps.deploy.deployments."""

from __future__ import annotations

from django.http import Http404, QueryDict
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from apps.deploy import deployments, filtersets
from apps.deploy import drift as drift_mod
from apps.deploy.api.serializers import uploaded_archive
from apps.deploy.live import live_events, live_status
from apps.deploy.models import Deployment, DeploymentTransition, Release, Runtime
from apps.deploy.services import SpecRejected
from apps.projects import scope
from apps.projects.choices import WorkspaceKind
from apps.projects.models import Application
from dice_console.api import ScopedGenericViewSet, ScopedRelationsMixin
from dice_console.api_input import JSONParser

# ---- serializers ------------------------------------------------------------------------------------


class TransitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeploymentTransition
        fields = ["from_status", "to_status", "at", "reason"]


class DeploymentSerializer(serializers.ModelSerializer):
    """A deployment with its history of transitions."""

    url = serializers.HyperlinkedIdentityField(view_name="api:deployment-detail")
    runtime_name = serializers.CharField(source="runtime.name", read_only=True)
    workspace = serializers.CharField(source="runtime.workspace.kind", read_only=True)
    application = serializers.IntegerField(source="runtime.application_id", read_only=True)
    application_name = serializers.CharField(source="runtime.application.__str__", read_only=True)
    version = serializers.IntegerField(source="release.version", read_only=True)
    created_by = serializers.CharField(source="created_by_name", read_only=True)
    transitions = TransitionSerializer(many=True, read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id", "url", "runtime", "runtime_name", "workspace", "application", "application_name",
            "release", "version", "status", "message", "progress", "rollback_of", "created_by",
            "created", "started", "finished", "transitions",
        ]
        read_only_fields = fields


class DeployRequestSerializer(ScopedRelationsMixin, serializers.Serializer):
    """Deploy a release, or a dice.yml (a release is made from it, with its folder's files)."""

    application = serializers.PrimaryKeyRelatedField(queryset=Application.objects.none())
    workspace = serializers.ChoiceField(choices=WorkspaceKind.values)
    runtime = serializers.CharField(default="main", max_length=40)
    release = serializers.PrimaryKeyRelatedField(queryset=Release.objects.none(), required=False, allow_null=True)
    spec_text = serializers.CharField(required=False, trim_whitespace=False, max_length=1024 * 1024)
    source_name = serializers.CharField(required=False, default="dice.yml", max_length=200)
    images = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    description = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)
    files_base64 = serializers.CharField(
        required=False, allow_blank=True, write_only=True,
        help_text="The spec folder as a base64 tar.gz (for the local cluster); or upload `files` as multipart",
    )
    files = serializers.FileField(required=False, write_only=True)

    def to_internal_value(self, data):
        if hasattr(data, "getlist") and "workspace" in data:
            # Not data.copy(): that deep-copies the uploaded files, and a large upload (a temporary
            # file on disk) cannot be copied ("cannot pickle '_io.BufferedRandom'").
            copied = QueryDict(mutable=True)
            for key, values in data.lists():
                copied.setlist(key, values)
            data = copied
            data["workspace"] = str(data["workspace"]).upper()
        elif isinstance(data, dict) and isinstance(data.get("workspace"), str):
            data = {**data, "workspace": data["workspace"].upper()}
        return super().to_internal_value(data)

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        fields["release"].queryset = scope.scoped(request.user if request else None, Release)
        return fields

    def validate(self, attrs):
        if bool(attrs.get("release")) == bool(attrs.get("spec_text")):
            raise ValidationError({"release": "give either a release or a spec_text"})
        data = uploaded_archive(attrs)
        if data is not None and attrs.get("release"):
            raise ValidationError({"files": "files come with a spec_text (a new release); a release keeps its own"})
        attrs["archive"] = data
        return attrs


class RuntimeSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:runtime-detail")
    application_name = serializers.CharField(source="application.__str__", read_only=True)
    workspace = serializers.CharField(source="workspace.kind", read_only=True)
    cluster = serializers.CharField(source="cluster.name", read_only=True)
    version = serializers.IntegerField(source="release.version", read_only=True, default=None, allow_null=True)
    page = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = Runtime
        fields = [
            "id", "url", "page", "application", "application_name", "workspace", "name", "cluster",
            "release", "version", "replicas", "created", "updated",
        ]
        read_only_fields = fields


class RuntimeDetailSerializer(RuntimeSerializer):
    """A runtime with what the cluster reports now, and its latest deployment."""

    status = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()
    latest_deployment = serializers.SerializerMethodField()

    class Meta(RuntimeSerializer.Meta):
        fields = [*RuntimeSerializer.Meta.fields, "status", "latest_deployment", "events"]
        read_only_fields = fields

    def get_status(self, obj) -> dict:
        return live_status(obj)

    def get_events(self, obj) -> list:
        return live_events(obj, 20)

    def get_latest_deployment(self, obj) -> dict | None:
        latest = obj.deployments.select_related("release", "runtime__workspace", "runtime__application__project__organization").first()
        return DeploymentSerializer(latest, context=self.context).data if latest else None


class ScaleSerializer(serializers.Serializer):
    service = serializers.CharField()
    replicas = serializers.IntegerField(min_value=0, max_value=deployments.MAX_REPLICAS)


class ServiceSerializer(serializers.Serializer):
    service = serializers.CharField()


class JobSerializer(serializers.Serializer):
    """A data engine's job of the runtime (`engine: spark|flink`), by its dice.yml name."""

    job = serializers.CharField(max_length=100)


class RollbackSerializer(serializers.Serializer):
    release = serializers.PrimaryKeyRelatedField(queryset=Release.objects.none())

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        fields["release"].queryset = scope.scoped(request.user if request else None, Release)
        return fields


# ---- viewsets ---------------------------------------------------------------------------------------

_DEPLOYMENT_RELATED = (
    "release", "runtime__workspace", "runtime__application__project__organization",
)


class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet):
    """Deployments of the runtimes in the user's scope, newest first, with their transitions.
    POST deploys (a release, or a dice.yml with its files); `cancel` stops an unfinished one."""

    model = Deployment
    filterset_class = filtersets.DeploymentFilterSet
    select_related = _DEPLOYMENT_RELATED
    prefetch_related = ("transitions",)
    http_method_names = ["get", "post", "head", "options"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_serializer_class(self):
        if self.action == "create":
            return DeployRequestSerializer
        return DeploymentSerializer

    @extend_schema(request=DeployRequestSerializer, responses={201: DeploymentSerializer})
    def create(self, request, *args, **kwargs):
        serializer = DeployRequestSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            if data.get("release"):
                deployment = deployments.deploy(
                    request.user, data["application"], data["workspace"],
                    release=data["release"], runtime_name=data["runtime"],
                )
            else:
                deployment = deployments.deploy_spec(
                    request.user, data["application"], data["workspace"],
                    spec_text=data["spec_text"], source_name=data["source_name"], images=data["images"],
                    files=data["archive"], runtime_name=data["runtime"], description=data["description"],
                )
        except SpecRejected as exc:
            return Response(
                {"spec_text": exc.messages, "errors": [e.to_dict() for e in exc.spec_errors]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        fresh = self.get_queryset().get(pk=deployment.pk)  # the task may already have moved it on
        return Response(DeploymentSerializer(fresh, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Stop following an unfinished rollout (what was applied stays)."""
        deployment = self.get_object()
        deployments.cancel(request.user, deployment)
        return Response(DeploymentSerializer(self.get_queryset().get(pk=deployment.pk),
                                             context=self.get_serializer_context()).data)


class AddonValuesSerializer(serializers.Serializer):
    """Connection values of a custom addon: {"addon": "ext", "values": {"URL": "...", "TOKEN": "..."}}."""

    addon = serializers.CharField(max_length=100)
    values = serializers.DictField(child=serializers.CharField(allow_blank=True, max_length=8192))


class RuntimeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                     ScopedGenericViewSet):
    """Runtimes in the user's scope; reading one asks its cluster for the live status. DELETE removes
    everything it runs, then the runtime."""

    model = Runtime
    filterset_class = filtersets.RuntimeFilterSet
    select_related = ("application__project__organization", "workspace", "cluster", "release")
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_serializer_class(self):
        if self.action == "retrieve":
            return RuntimeDetailSerializer
        if self.action == "scale":
            return ScaleSerializer
        if self.action == "restart":
            return ServiceSerializer
        if self.action == "rollback":
            return RollbackSerializer
        if self.action == "custom_addons":
            return AddonValuesSerializer
        if self.action in ("cancel_job", "job_log"):
            return JobSerializer
        return RuntimeSerializer

    def perform_destroy(self, instance):
        deployments.delete_runtime(self.request.user, instance)

    def _input(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def _detail(self, runtime):
        runtime = self.get_queryset().get(pk=runtime.pk)
        return Response(RuntimeDetailSerializer(runtime, context=self.get_serializer_context()).data)

    @extend_schema(request=ScaleSerializer, responses={200: RuntimeDetailSerializer})
    @action(detail=True, methods=["post"])
    def scale(self, request, pk=None):
        """Set a service's replicas until the next deployment."""
        runtime = self.get_object()
        data = self._input(request)
        deployments.scale(request.user, runtime, data["service"], data["replicas"])
        return self._detail(runtime)

    @extend_schema(request=ServiceSerializer, responses={200: RuntimeDetailSerializer})
    @action(detail=True, methods=["post"])
    def restart(self, request, pk=None):
        """A rolling restart of one service."""
        runtime = self.get_object()
        data = self._input(request)
        deployments.restart(request.user, runtime, data["service"])
        return self._detail(runtime)

    @extend_schema(
        methods=["GET"], request=None, responses={200: dict},
        description="The runtime's custom addons, each with the keys of the values given to the console.",
    )
    @extend_schema(methods=["POST"], request=AddonValuesSerializer, responses={200: dict})
    @action(detail=True, methods=["get", "post"], url_path="custom-addons")
    def custom_addons(self, request, pk=None):
        """GET: {addon: [keys given]}. POST {addon, values: {KEY: value}}: replace a custom addon's
        connection values (secret at rest, never shown back), used from the next deployment on."""
        from apps.deploy import addons

        runtime = self.get_object()
        if request.method == "POST":
            data = self._input(request)
            addons.set_custom_values(request.user, runtime, data["addon"], data["values"])
        return Response(addons.custom_addons(runtime))

    @extend_schema(
        request=None, responses={200: dict},
        parameters=[OpenApiParameter("job", str, required=True, description="the job's name in dice.yml")],
    )
    @action(detail=True, methods=["get"], url_path="job-log")
    def job_log(self, request, pk=None):
        """The latest run of a data engine's job (`engine: spark|flink`): {job, run, state, message,
        lines} (a Flink job's lines: its client's output, each state it was seen in, its exception)."""
        runtime = self.get_object()
        data = JobSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        return Response(deployments.job_log(runtime, data.validated_data["job"]))

    @extend_schema(request=JobSerializer, responses={200: dict})
    @action(detail=True, methods=["post"], url_path="cancel-job")
    def cancel_job(self, request, pk=None):
        """Cancel the runs still going of a data engine's job: {job, cancelled: [runs]}."""
        runtime = self.get_object()
        job = self._input(request)["job"]
        return Response({"job": job, "cancelled": deployments.cancel_job(request.user, runtime, job)})

    @extend_schema(request=None, responses={200: RuntimeDetailSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        """Scale every service to zero; deploy again to start it."""
        runtime = self.get_object()
        deployments.stop(request.user, runtime)
        return self._detail(runtime)

    @extend_schema(request=RollbackSerializer, responses={201: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        """Deploy an earlier release of the application onto this runtime again."""
        runtime = self.get_object()
        data = self._input(request)
        if data["release"].application_id != runtime.application_id:
            raise Http404("no such release of this application")
        deployment = deployments.rollback(request.user, runtime, data["release"])
        fresh = Deployment.objects.select_related(*_DEPLOYMENT_RELATED).get(pk=deployment.pk)
        return Response(DeploymentSerializer(fresh, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["get"])
    def drift(self, request, pk=None):
        """In sync or out of sync with its release, and the differences (live against desired)."""
        return Response(drift_mod.runtime_drift(self.get_object()))

    @extend_schema(request=None, responses={201: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def sync(self, request, pk=None):
        """Apply the runtime's release again: what drifted is put back (a new deployment)."""
        deployment = drift_mod.sync(request.user, self.get_object())
        fresh = Deployment.objects.select_related(*_DEPLOYMENT_RELATED).get(pk=deployment.pk)
        return Response(DeploymentSerializer(fresh, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)
