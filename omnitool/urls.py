"""Top-level URLs: portal and tool pages (tools.urls), auth, admin, health."""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from omnitool.views import healthz

admin.site.site_header = "OmniTool administration"
admin.site.site_title = "OmniTool"

urlpatterns = [
    path("healthz/", healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("tools.urls")),
]
