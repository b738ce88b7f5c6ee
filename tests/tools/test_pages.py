"""The demo tools' own pages (tools/pages/)."""
import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, make_user, grant, catalogue_tools):
    def sign_in(key: str):
        user = make_user(f"user-{key}")
        grant(user, catalogue_tools[key])
        client.force_login(user)
        return client

    return sign_in


def test_invoice_generator__totals_line_items_with_tax(signed_in):
    client = signed_in("invoice-generator")
    form = {
        "customer": "ACME",
        "tax_rate": "20",
        "form-TOTAL_FORMS": "3",
        "form-INITIAL_FORMS": "0",
        "form-0-description": "Consulting",
        "form-0-quantity": "3",
        "form-0-unit_price": "100.00",
        "form-1-description": "Licence",
        "form-1-quantity": "1",
        "form-1-unit_price": "49.99",
        "form-2-description": "",
        "form-2-quantity": "",
        "form-2-unit_price": "",
    }

    response = client.post("/tools/invoice-generator/", form)

    assert response.status_code == 200
    assert {key: str(value) for key, value in response.context["totals"].items()} == {
        "subtotal": "349.99",
        "tax": "70.00",
        "total": "419.99",
    }
    assert "Invoice for ACME" in response.content.decode()


def test_invoice_generator__rejects_negative_quantities(signed_in):
    client = signed_in("invoice-generator")
    form = {"tax_rate": "20", "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "0",
            "form-0-quantity": "-1", "form-0-unit_price": "5"}

    response = client.post("/tools/invoice-generator/", form)

    assert response.context["totals"] is None
    assert "greater than or equal to 0" in response.content.decode()


def test_email_templates__lists_and_searches(signed_in):
    client = signed_in("email-templates")

    everything = client.get("/tools/email-templates/")
    reminders = client.get("/tools/email-templates/", {"q": "due"})

    assert len(everything.context["templates"]) == 3
    assert [template["slug"] for template in reminders.context["templates"]] == ["invoice-reminder"]


def test_team_directory__lists_active_users_only(signed_in, make_user):
    make_user("gone", is_active=False)
    client = signed_in("team-directory")

    response = client.get("/tools/team-directory/")

    usernames = [person.username for person in response.context["people"]]
    assert "user-team-directory" in usernames
    assert "gone" not in usernames
