"""Team Directory: everyone with an active account."""
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def team_directory(request: HttpRequest, tool) -> HttpResponse:
    people = (
        get_user_model()
        .objects.filter(is_active=True)
        .order_by("last_name", "first_name", "username")
        .only("username", "first_name", "last_name", "email")
    )
    return render(request, "tools/team_directory.html", {"tool": tool, "people": people})
