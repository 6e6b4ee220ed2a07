"""Page URLs of the clusters app."""

from django.urls import path

from apps.clusters import views

app_name = "clusters"

urlpatterns = [
    path("clusters/", views.ClusterListView.as_view(), name="clusters"),
    path("clusters/new/", views.ClusterRegisterView.as_view(), name="cluster_add"),
    path("clusters/kubeconfig-contexts/", views.kubeconfig_contexts, name="kubeconfig_contexts"),
    path("clusters/<slug:name>/", views.ClusterView.as_view(), name="cluster"),
    path("clusters/<slug:name>/edit/", views.ClusterEditView.as_view(), name="cluster_edit"),
    path("clusters/<slug:name>/delete/", views.ClusterDeleteView.as_view(), name="cluster_delete"),
    path("clusters/<slug:name>/check/", views.ClusterActionView.as_view(action="check"), name="cluster_check"),
    path("clusters/<slug:name>/sync/", views.ClusterActionView.as_view(action="sync"), name="cluster_sync"),
    path("clusters/<slug:name>/inspect/", views.ClusterActionView.as_view(action="inspect"), name="cluster_inspect"),
    path("clusters/<slug:name>/inspection/", views.InspectionView.as_view(), name="inspection"),
    path("clusters/<slug:name>/nodes/<str:node>/labels/", views.NodeLabelsView.as_view(), name="node_labels"),
    path("reports/resources/", views.ResourceReportView.as_view(), name="resources"),
]
