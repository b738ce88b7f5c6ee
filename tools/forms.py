"""Admin forms for tools."""
from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelectMultiple
from django.contrib.auth import get_user_model

from tools.models import ToolAccess


class GrantToAllExceptForm(forms.Form):
    """The intermediate page of "Grant to all active users except…"."""

    excluded_users = forms.ModelMultipleChoiceField(
        label="Leave out",
        queryset=get_user_model().objects.filter(is_active=True),
        required=False,
        help_text="These users get no new grant. Everyone else who is active gets the selected tools.",
        widget=AutocompleteSelectMultiple(ToolAccess._meta.get_field("user"), admin.site),
    )
