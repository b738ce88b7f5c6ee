"""HTTP checks against a running deployment: what `manage.py smoke --url URL` runs.

Only the standard library (urllib), and only ever the origin of the URL given:
every path is joined to it, redirects are never followed (their Location is
what some checks look at), and a link to another origin is a failure, not a
request. While the app boots (connection refused, or 502/503/504 from it or a
router), requests are retried a bounded number of times with a growing pause;
once it has answered, nothing is retried.

Anonymous checks run first, each with its own cookie jar. With credentials
(SMOKE_USERNAME / SMOKE_PASSWORD) the `login` check signs in through the real
login form (CSRF token from the form and its cookie), and two checks compare
the portal with the grants the app enforces: every tool the portal lists must
open (200), and every catalogue tool it does not list must be refused (403).
So a portal listing a tool without a grant fails (that page answers 403), and
so does a tool that opens but is not listed.
"""
from __future__ import annotations

import http.client
import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from html.parser import HTMLParser

from deploy.checks import Check, CheckFailure, CheckReport, CheckWarning, run_checks, select_checks
from tools.catalogue import CATALOGUE

DEFAULT_TIMEOUT = 10.0  # seconds for one request
DEFAULT_RETRIES = 5  # extra attempts while the app boots
LONG_CACHE_SECONDS = 365 * 24 * 60 * 60  # a year: what hashed static files deserve
BOOTING_STATUSES = frozenset({502, 503, 504})
TOOL_PATH = re.compile(r"^/tools/(?P<key>[^/]+)/$")


class SmokeError(ValueError):
    """The smoke run cannot start (a bad URL, half the credentials); one line for CommandError."""


def retry_pause(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, 4, 8, then 10 at most)."""
    return float(min(2 ** (attempt - 1), 10))


@dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: bytes
    url: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def header(self, name: str) -> str:
        return self.headers.get(name, "") or ""

    def describe(self) -> str:
        """The status, where a redirect points, and a hint when it points to HTTPS from HTTP."""
        location = self.header("Location")
        if self.status not in (301, 302, 303, 307, 308) or not location:
            return str(self.status)
        hint = ""
        if self.url.startswith("http://") and location.startswith("https://"):
            hint = " (HTTPS only: smoke the https:// URL)"
        return f"{self.status} to {location}{hint}"

    @property
    def location_path(self) -> str:
        """The path a redirect points to ("" when it is not one)."""
        return urllib.parse.urlsplit(self.header("Location")).path


class OffSite(Exception):
    """A URL outside the deployment's origin, which smoke never requests."""


class AppUnavailable(Exception):
    """No answer from the app (after the boot retries): refused, reset, timed out."""


@dataclass
class BootWait:
    """The retry budget while the app boots, shared by every client of one run."""

    retries: int = DEFAULT_RETRIES
    sleep: Callable[[float], None] = time.sleep
    pause: Callable[[int], float] = retry_pause
    booted: bool = False
    attempts: int = 0  # retries spent


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError, which `SiteClient` turns into a Response


class SiteClient:
    """HTTP to one origin, with its own cookie jar, never following redirects."""

    def __init__(self, base_url: str, timeout: float, boot: BootWait):
        parts = urllib.parse.urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self.boot = boot
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            _NoRedirects(), urllib.request.HTTPCookieProcessor(self.cookies)
        )

    def url_for(self, path_or_url: str) -> str:
        url = urllib.parse.urljoin(self.origin + "/", path_or_url)
        parts = urllib.parse.urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            raise OffSite(url)
        return url

    def cookie(self, name: str) -> http.cookiejar.Cookie | None:
        return next((cookie for cookie in self.cookies if cookie.name == name), None)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post_form(self, path: str, fields: dict[str, str]) -> Response:
        url = self.url_for(path)
        # Django's CSRF protection checks Origin (and, over HTTPS, Referer) against the host.
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": self.origin, "Referer": url}
        return self.request("POST", path, urllib.parse.urlencode(fields).encode(), headers)

    def request(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None) -> Response:
        url = self.url_for(path)
        while True:
            try:
                response = self._once(method, url, data, headers or {})
            except AppUnavailable:
                if not self._retry():
                    raise
                continue
            if response.status in BOOTING_STATUSES and self._retry():
                continue
            self.boot.booted = True
            return response

    def _retry(self) -> bool:
        """Pause and say yes while the app may still be booting and retries are left."""
        if self.boot.booted or self.boot.attempts >= self.boot.retries:
            return False
        self.boot.attempts += 1
        self.boot.sleep(self.boot.pause(self.boot.attempts))
        return True

    def _once(self, method: str, url: str, data: bytes | None, headers: dict) -> Response:
        headers = {"User-Agent": "omnitool-smoke", **headers}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=self.timeout) as answer:
                return Response(answer.status, answer.headers, answer.read(), url)
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, error.headers, error.read(), url)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", error)
            raise AppUnavailable(f"{method} {url}: {reason or type(error).__name__}") from None


class _PageParser(HTMLParser):
    """The bits of a page smoke looks at: stylesheet links, anchors, form inputs."""

    def __init__(self):
        super().__init__()
        self.stylesheets: list[str] = []
        self.links: list[str] = []
        self.inputs: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        if tag == "link" and "stylesheet" in attributes.get("rel", "").lower().split():
            self.stylesheets.append(attributes.get("href", ""))
        elif tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])
        elif tag == "input" and attributes.get("name"):
            self.inputs[attributes["name"]] = attributes.get("value", "")


def parse_page(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    return parser


def max_age(cache_control: str) -> int | None:
    match = re.search(r"(?:^|[,\s])max-age=(\d+)", cache_control)
    return int(match.group(1)) if match else None


@dataclass
class SmokeContext:
    """What every check of one run shares: the target, the boot budget, the signed-in client."""

    url: str
    timeout: float = DEFAULT_TIMEOUT
    boot: BootWait = field(default_factory=BootWait)
    expect_version: str | None = None
    username: str | None = None
    password: str | None = None
    _signed_in: SiteClient | None = None
    _sign_in_error: str | None = None

    @property
    def has_credentials(self) -> bool:
        return bool(self.username)

    def anonymous(self) -> SiteClient:
        return SiteClient(self.url, self.timeout, self.boot)

    def signed_in(self) -> SiteClient:
        """A client signed in as SMOKE_USERNAME (signing in once per run), or CheckFailure saying why not."""
        if self._signed_in is None and self._sign_in_error is None:
            try:
                self._signed_in = sign_in(self.anonymous(), self.username or "", self.password or "")
            except CheckFailure as problem:
                self._sign_in_error = problem.detail
        if self._signed_in is None:
            raise CheckFailure(f"cannot sign in as {self.username}: {self._sign_in_error}")
        return self._signed_in


def sign_in(client: SiteClient, username: str, password: str) -> SiteClient:
    """Sign in through /login/ like a browser: the form's CSRF token, its cookie, Origin and Referer."""
    form = client.get("/login/")
    if form.status != 200:
        raise CheckFailure(f"GET /login/ answered {form.describe()}")
    token = parse_page(form.text).inputs.get("csrfmiddlewaretoken")
    if not token:
        raise CheckFailure("the login form has no csrfmiddlewaretoken field")
    csrf_cookie = client.cookie("csrftoken")
    if csrf_cookie is None:
        raise CheckFailure("/login/ set no csrftoken cookie")
    if csrf_cookie.secure and client.origin.startswith("http://"):
        raise CheckFailure("the csrftoken cookie is Secure, so it never goes back over http://; smoke the https:// URL")
    answer = client.post_form(
        "/login/", {"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/"}
    )
    if answer.status == 403:
        raise CheckFailure(
            "the login POST was refused with 403 (CSRF: check CSRF_TRUSTED_ORIGINS and the URL's scheme)"
        )
    if answer.status == 200:
        raise CheckFailure("the login form came back: wrong SMOKE_USERNAME or SMOKE_PASSWORD, or an inactive user")
    if answer.status not in (301, 302, 303) or answer.location_path.rstrip("/").endswith("login"):
        raise CheckFailure(f"the login POST answered {answer.describe()}")
    if client.cookie("sessionid") is None:
        raise CheckFailure("signed in, but no session cookie came back (Secure cookies over http:// are dropped)")
    return client


class SmokeCheck(Check):
    """A check of the running deployment; `probe()` does the work, `run()` turns "no answer" into a failure."""

    def __init__(self, context: SmokeContext):
        self.context = context

    def run(self) -> str:
        try:
            return self.probe()
        except AppUnavailable as error:
            retries = self.context.boot.attempts
            after = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
            raise CheckFailure(f"no answer{after}: {error}") from None

    def probe(self) -> str:
        raise NotImplementedError


class HealthzCheck(SmokeCheck):
    name = "healthz"
    description = "/healthz/ answers 200 with database ok (and --expect-version's version)."

    def probe(self) -> str:
        started = time.perf_counter()
        response = self.context.anonymous().get("/healthz/")
        try:
            document = json.loads(response.body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise CheckFailure(f"/healthz/ answered {response.describe()}, not JSON: {response.text[:80]!r}")
        database, version = document.get("database"), document.get("version")
        attempts = self.context.boot.attempts
        retries = f" after {attempts} retr{'y' if attempts == 1 else 'ies'}" if attempts else ""
        if response.status != 200 or database != "ok":
            raise CheckFailure(
                f"/healthz/ answered {response.status}{retries}: database {database}, status {document.get('status')}"
            )
        if not version:
            raise CheckFailure("/healthz/ reports no release version")
        expected = self.context.expect_version
        if expected is not None and str(version) != expected:
            raise CheckFailure(f"version {version!r} is running, expected {expected!r}")
        return f"200 in {time.perf_counter() - started:.2f} s{retries}: database ok, version {version}"


class PortalRequiresLoginCheck(SmokeCheck):
    name = "portal-requires-login"
    description = "/ sends anonymous users to the login page."

    def probe(self) -> str:
        response = self.context.anonymous().get("/")
        if response.status not in (301, 302, 303) or response.location_path != "/login/":
            raise CheckFailure(f"/ answered an anonymous user {response.describe()}, not a redirect to /login/")
        return f"{response.status} to {response.header('Location')}"


class LoginPageCheck(SmokeCheck):
    name = "login-page"
    description = "/login/ renders the sign-in form."

    def probe(self) -> str:
        return check_login_form(self.context.anonymous(), "/login/")


class AdminLoginPageCheck(SmokeCheck):
    name = "admin-login-page"
    description = "/admin/login/ renders Django admin's sign-in form."

    def probe(self) -> str:
        return check_login_form(self.context.anonymous(), "/admin/login/")


def check_login_form(client: SiteClient, path: str) -> str:
    response = client.get(path)
    if response.status != 200:
        raise CheckFailure(f"{path} answered {response.describe()}")
    fields = parse_page(response.text).inputs
    missing = [name for name in ("csrfmiddlewaretoken", "username", "password") if name not in fields]
    if missing:
        raise CheckFailure(f"{path} has no {', '.join(missing)} field")
    return f"200, sign-in form ({len(response.body):,} bytes)"


class StaticFileCheck(SmokeCheck):
    name = "static-file"
    description = "The login page's stylesheet is served (200) and cached for at least a year."

    def probe(self) -> str:
        client = self.context.anonymous()
        page = client.get("/login/")
        if page.status != 200:
            raise CheckFailure(f"/login/ answered {page.describe()}, so no stylesheet link to follow")
        stylesheets = parse_page(page.text).stylesheets
        if not stylesheets:
            raise CheckFailure("/login/ links no stylesheet")
        try:
            url = client.url_for(stylesheets[0])
        except OffSite as off_site:
            raise CheckFailure(f"the stylesheet is on another origin ({off_site}); smoke only requests {client.origin}")
        path = urllib.parse.urlsplit(url).path
        response = client.get(url)
        if response.status != 200:
            raise CheckFailure(f"{path} answered {response.describe()} (was collectstatic run?)")
        cache_control = response.header("Cache-Control")
        age = max_age(cache_control)
        if age is None or age < LONG_CACHE_SECONDS:
            raise CheckFailure(
                f"{path} is cached with {cache_control or 'no Cache-Control'!r}, not max-age >= {LONG_CACHE_SECONDS} "
                "(hashed names come from collectstatic's manifest, with DEBUG off)"
            )
        return f"{path}: {cache_control}"


class ToolPagesRefuseAnonymousCheck(SmokeCheck):
    name = "tool-pages-refuse-anonymous"
    description = "Every catalogue tool's page sends anonymous users to login."

    def probe(self) -> str:
        client = self.context.anonymous()
        problems = []
        for tool in CATALOGUE:
            response = client.get(tool.url)
            if response.status not in (301, 302, 303) or response.location_path != "/login/":
                problems.append(f"{tool.url} answered {response.describe()}")
        if problems:
            raise CheckFailure("; ".join(problems), problems)
        return f"{len(CATALOGUE)} tool pages redirect to /login/"


class LoginCheck(SmokeCheck):
    name = "login"
    description = "SMOKE_USERNAME signs in with SMOKE_PASSWORD through the login form."

    def probe(self) -> str:
        self.context.signed_in()
        return f"signed in as {self.context.username}"


def portal_tool_keys(client: SiteClient) -> list[str]:
    """The tool keys the signed-in user's portal links to, in page order."""
    response = client.get("/")
    if response.status != 200:
        raise CheckFailure(f"the portal answered {response.describe()} to the signed-in user")
    keys = []
    for href in parse_page(response.text).links:
        match = TOOL_PATH.match(urllib.parse.urlsplit(href).path)
        if match and match.group("key") not in keys:
            keys.append(match.group("key"))
    return keys


class PortalToolsOpenCheck(SmokeCheck):
    name = "portal-tools-open"
    description = "Every tool the user's portal lists opens (200): the portal lists no tool without a grant."

    def probe(self) -> str:
        client = self.context.signed_in()
        listed = portal_tool_keys(client)
        problems = []
        for key in listed:
            status = client.get(f"/tools/{key}/").status
            if status != 200:
                problems.append(f"{key} is listed but answers {status}")
        if problems:
            raise CheckFailure(f"the portal lists {plural_tools(len(problems))} {self.context.username} cannot open: "
                               + "; ".join(problems), problems)
        if not listed:
            return f"the portal lists no tools for {self.context.username}"
        return f"{self.context.username}: {', '.join(listed)} listed and open"


class UngrantedToolsRefusedCheck(SmokeCheck):
    name = "ungranted-tools-refused"
    description = "Every catalogue tool the portal does not list answers 403: the portal lists every granted tool."

    def probe(self) -> str:
        client = self.context.signed_in()
        listed = set(portal_tool_keys(client))
        unlisted = [tool for tool in CATALOGUE if tool.key not in listed]
        if not unlisted:
            raise CheckWarning(
                f"the portal lists every catalogue tool for {self.context.username}, so no refusal was seen; "
                "smoke with a user who lacks a grant to check one"
            )
        problems = []
        for tool in unlisted:
            status = client.get(tool.url).status
            if status == 200:
                problems.append(f"{tool.key} opens (200) but the portal does not list it")
            elif status != 403:
                problems.append(f"{tool.key} answers {status}, not 403")
        if problems:
            raise CheckFailure("; ".join(problems), problems)
        return f"{', '.join(tool.key for tool in unlisted)} refused (403)"


def plural_tools(count: int) -> str:
    return f"{count} tool{'s' if count != 1 else ''}"


# The checks in the order they run. The signed-in ones need SMOKE_USERNAME / SMOKE_PASSWORD.
ANONYMOUS_CHECKS: tuple[type[SmokeCheck], ...] = (
    HealthzCheck,
    PortalRequiresLoginCheck,
    LoginPageCheck,
    AdminLoginPageCheck,
    StaticFileCheck,
    ToolPagesRefuseAnonymousCheck,
)
SIGNED_IN_CHECKS: tuple[type[SmokeCheck], ...] = (LoginCheck, PortalToolsOpenCheck, UngrantedToolsRefusedCheck)


def smoke_checks(context: SmokeContext, signed_in: bool | None = None) -> list[Check]:
    """The checks in order; the signed-in ones only with credentials (or when `signed_in` says so)."""
    with_signed_in = context.has_credentials if signed_in is None else signed_in
    return [check(context) for check in ANONYMOUS_CHECKS + (SIGNED_IN_CHECKS if with_signed_in else ())]


def validate_target(url: str, username: str | None, password: str | None) -> str:
    """The base URL without a trailing slash; SmokeError for a URL or credentials smoke cannot use."""
    parts = urllib.parse.urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SmokeError(f"--url must be an http:// or https:// URL such as https://omnitool.example.com, not {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SmokeError(f"--url must be the site's root (OmniTool is served at /), not {url!r}")
    if bool(username) != bool(password):
        raise SmokeError("set both SMOKE_USERNAME and SMOKE_PASSWORD, or neither")
    return f"{parts.scheme}://{parts.netloc}"


def smoke_context(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    expect_version: str | None = None,
    username: str | None = None,
    password: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SmokeContext:
    base_url = validate_target(url, username, password)
    return SmokeContext(
        url=base_url,
        timeout=timeout,
        boot=BootWait(retries=max(0, retries), sleep=sleep),
        expect_version=expect_version,
        username=username or None,
        password=password or None,
    )


def run_smoke(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    expect_version: str | None = None,
    username: str | None = None,
    password: str | None = None,
    only: Iterable[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CheckReport:
    """Run the smoke checks (all, or those in `only`) against `url` and return the report."""
    context = smoke_context(
        url, timeout=timeout, retries=retries, expect_version=expect_version,
        username=username, password=password, sleep=sleep,
    )
    return run_checks(select_checks(smoke_checks(context), only))
