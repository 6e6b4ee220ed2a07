"""Page URLs of the CMDB."""

from django.urls import path

from apps.cmdb import views

app_name = "cmdb"

urlpatterns = [
    path("cmdb/", views.ItemListView.as_view(), name="items"),
    path("cmdb/reports/", views.ReportsView.as_view(), name="reports"),
    path("cmdb/<int:pk>/", views.ItemView.as_view(), name="item"),
]
