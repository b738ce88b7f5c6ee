"""System checks on the catalogue: mistakes in tools/catalogue.py stop start-up
(`manage.py check`, runserver, migrate) instead of surfacing as a broken page."""
from django.core.checks import Error, register
from django.core.validators import validate_slug
from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from tools import catalogue as catalogue_module


@register()
def check_catalogue(app_configs=None, **kwargs) -> list[Error]:
    errors: list[Error] = []
    seen_keys: set[str] = set()
    seen_names: set[str] = set()
    for tool in catalogue_module.CATALOGUE:
        where = f"tools/catalogue.py: tool {tool.key!r}"
        if tool.key in seen_keys:
            errors.append(Error(f"{where} is declared twice.", hint="Keys must be unique.", id="tools.E001"))
        if tool.name in seen_names:
            errors.append(Error(f"{where} reuses the name {tool.name!r}.", hint="Names must be unique.", id="tools.E002"))
        seen_keys.add(tool.key)
        seen_names.add(tool.name)
        try:
            validate_slug(tool.key)
        except ValidationError:
            errors.append(
                Error(f"{where}: the key is not a slug.", hint="Use letters, digits, - and _.", id="tools.E003")
            )
        try:
            import_string(tool.view)
        except ImportError as error:
            errors.append(Error(f"{where}: view {tool.view!r} cannot be imported ({error}).", id="tools.E004"))
    return errors
