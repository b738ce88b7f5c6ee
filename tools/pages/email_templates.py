"""Email Templates: the standard customer emails, listed for copying."""
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

EMAIL_TEMPLATES = (
    {
        "slug": "welcome",
        "subject": "Welcome to {company}",
        "body": "Hello {first_name},\n\nWelcome aboard! Your account is ready.\n\nThe {company} team",
    },
    {
        "slug": "invoice-reminder",
        "subject": "Invoice {invoice_number} is due",
        "body": "Hello {first_name},\n\nA friendly reminder that invoice {invoice_number} "
        "is due on {due_date}.\n\nThank you,\nAccounts",
    },
    {
        "slug": "password-reset-help",
        "subject": "Help with your password",
        "body": "Hello {first_name},\n\nUse the 'Forgot password' link on the sign-in page. "
        "If that fails, reply to this email.\n\nSupport",
    },
)


def email_templates(request: HttpRequest, tool) -> HttpResponse:
    query = request.GET.get("q", "").strip().lower()
    templates = [
        template
        for template in EMAIL_TEMPLATES
        if not query or query in template["subject"].lower() or query in template["body"].lower()
    ]
    return render(request, "tools/email_templates.html", {"tool": tool, "templates": templates, "query": query})
