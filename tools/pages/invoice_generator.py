"""Invoice Generator: totals line items entered in a form."""
from decimal import ROUND_HALF_UP, Decimal

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

CENT = Decimal("0.01")


class LineItemForm(forms.Form):
    description = forms.CharField(max_length=200, required=False)
    quantity = forms.DecimalField(min_value=0, max_digits=10, decimal_places=2, required=False)
    unit_price = forms.DecimalField(min_value=0, max_digits=12, decimal_places=2, required=False)

    def line_total(self) -> Decimal:
        quantity = self.cleaned_data.get("quantity") or Decimal(0)
        unit_price = self.cleaned_data.get("unit_price") or Decimal(0)
        return (quantity * unit_price).quantize(CENT, rounding=ROUND_HALF_UP)


LineItemFormSet = forms.formset_factory(LineItemForm, extra=5, max_num=50)


class InvoiceForm(forms.Form):
    customer = forms.CharField(max_length=200, required=False)
    tax_rate = forms.DecimalField(
        label="Tax rate (%)", min_value=0, max_value=100, decimal_places=2, initial=Decimal("20")
    )


def invoice_totals(line_totals: list[Decimal], tax_rate_percent: Decimal) -> dict[str, Decimal]:
    subtotal = sum(line_totals, Decimal(0)).quantize(CENT)
    tax = (subtotal * tax_rate_percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    return {"subtotal": subtotal, "tax": tax, "total": subtotal + tax}


def invoice_generator(request: HttpRequest, tool) -> HttpResponse:
    totals = None
    lines: list[tuple[str, Decimal]] = []
    if request.method == "POST":
        form = InvoiceForm(request.POST)
        formset = LineItemFormSet(request.POST)
        if form.is_valid() and formset.is_valid():
            for line in formset.forms:
                if line.cleaned_data.get("quantity") and line.cleaned_data.get("unit_price") is not None:
                    lines.append((line.cleaned_data.get("description", ""), line.line_total()))
            totals = invoice_totals([amount for _, amount in lines], form.cleaned_data["tax_rate"])
    else:
        form = InvoiceForm()
        formset = LineItemFormSet()
    return render(
        request,
        "tools/invoice_generator.html",
        {"tool": tool, "form": form, "formset": formset, "lines": lines, "totals": totals},
    )
